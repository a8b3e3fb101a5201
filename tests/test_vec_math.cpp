// Accuracy of the CPU backend's float32 exp-family kernels (cpu_fallback/vec_math.h) through
// the public ops: strata::exp, strata::log and nn::functional sigmoid, tanh, elu, softplus,
// gelu, softmax and log_softmax, forward and (where the backward calls exp) backward. Inputs
// sweep every power of two of both signs, dense grids, random values over [-100, 100] and
// over the whole float range, and the special values (±0, ±inf, NaN, subnormals, the overflow
// and underflow edges); each result is compared with the same formula in double std:: math.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "strata/strata.h"

namespace strata {
namespace {

namespace F = nn::functional;
using Limits = std::numeric_limits<float>;

constexpr double kInf = std::numeric_limits<double>::infinity();
// Spacing of float32 subnormals: a result below FLT_MIN is rounded to a multiple of it, so its
// relative error can exceed any rtol; this absolute floor allows that one rounding.
const double kSubnormalStep = std::ldexp(1.0, -149);

// float32 inputs: the special values, ±2^k for every k, 1.5 * 2^k, the float neighbours of the
// exp overflow and underflow edges, a dense grid over [-30, 30], a finer one over [-6, -2],
// random values over [-100, 100] and random finite bit patterns.
std::vector<float> sweep_inputs() {
  std::vector<float> xs = {0.0f,       -0.0f,       Limits::infinity(), -Limits::infinity(),
                           Limits::quiet_NaN(),     Limits::max(),      -Limits::max(),
                           Limits::min(),           -Limits::min(),     Limits::denorm_min(),
                           -Limits::denorm_min(),   100.0f,             -100.0f,
                           20.0f,      -20.0f,      0.625f,             -0.625f,
                           0.5f,       -0.5f};
  for (int k = -149; k <= 127; ++k) {
    const float p = std::ldexp(1.0f, k);
    xs.insert(xs.end(), {p, -p, 1.5f * p, -1.5f * p});
  }
  // exp overflows past ln(FLT_MAX) = 88.7228 and underflows to 0 below ln(2^-150) = -103.972;
  // subnormal results start below ln(FLT_MIN) = -87.3365.
  for (const float edge : {88.7228391f, -103.972077f, -87.3365448f, -88.7228391f, 103.972077f}) {
    float below = edge, above = edge;
    for (int i = 0; i < 64; ++i) {
      below = std::nextafter(below, -Limits::infinity());
      above = std::nextafter(above, Limits::infinity());
      xs.insert(xs.end(), {below, above});
    }
  }
  for (int i = -30000; i <= 30000; ++i) xs.push_back(static_cast<float>(i) * 1e-3f);
  // GELU's negative tail, where 1 + erf(x / sqrt2) cancels and erf's absolute error shows.
  for (int i = 0; i <= 80000; ++i) xs.push_back(-2.0f - static_cast<float>(i) * 5e-5f);
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f);
  for (int i = 0; i < 100000; ++i) xs.push_back(wide(rng));
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 20000; ++i) {
    const float v = std::bit_cast<float>(bits(rng));
    if (std::isfinite(v)) xs.push_back(v);
  }
  return xs;
}

const std::vector<float>& inputs() {
  static const std::vector<float> xs = sweep_inputs();
  return xs;
}

// True when float32 `got` is within atol + rtol * |want| of the double reference `want`.
// NaN must match NaN; an infinite result must match an infinite one, except that a reference
// within rtol of FLT_MAX may come out as inf or FLT_MAX (one ulp at the overflow edge).
bool close_enough(float got, double want, double rtol, double atol) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isnan(got)) return false;
  const double g = static_cast<double>(got);
  const double edge = static_cast<double>(Limits::max()) * (1.0 - rtol);
  if (std::isinf(g) || std::isinf(static_cast<float>(want))) {
    if (g == static_cast<double>(static_cast<float>(want))) return true;
    const bool same_sign = (g > 0) == (want > 0);
    return same_sign && std::fabs(g) >= edge && std::fabs(want) >= edge;
  }
  return std::fabs(g - want) <= atol + rtol * std::fabs(want);
}

// Compares got[i] with want(xs[i]) for every i and reports the count and the worst few.
void expect_all_close(const std::string& what, const std::vector<float>& xs,
                      const std::vector<float>& got, const std::function<double(double)>& want,
                      double rtol, double atol) {
  ASSERT_EQ(got.size(), xs.size()) << what;
  int64_t bad = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t i = 0; i < xs.size(); ++i) {
    const double ref = want(static_cast<double>(xs[i]));
    if (close_enough(got[i], ref, rtol, atol)) continue;
    if (++bad <= 5) {
      first << "\n  x = " << xs[i] << ": got " << got[i] << ", want " << ref
            << " (rel err " << std::fabs(static_cast<double>(got[i]) - ref) / std::fabs(ref) << ")";
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << xs.size()
                    << " values outside atol " << atol << " + rtol " << rtol << first.str();
}

// out = fn(x) over the sweep, compared with the double reference.
void check_forward(const std::string& what, const std::function<Tensor(const Tensor&)>& fn,
                   const std::function<double(double)>& want, double rtol, double atol) {
  const std::vector<float>& xs = inputs();
  const Tensor x = from_vector<float>(xs, {static_cast<int64_t>(xs.size())});
  expect_all_close(what, xs, fn(x).to_vector<float>(), want, rtol, atol);
}

// d/dx sum(fn(x)) over the sweep (the backward with grad_out = 1), against the reference.
void check_backward(const std::string& what, const std::function<Tensor(const Tensor&)>& fn,
                    const std::function<double(double)>& want, double rtol, double atol) {
  const std::vector<float>& xs = inputs();
  Tensor x = from_vector<float>(xs, {static_cast<int64_t>(xs.size())});
  x.set_requires_grad(true);
  fn(x).backward(ones_like(x));
  expect_all_close(what, xs, x.grad().to_vector<float>(), want, rtol, atol);
}

// 1 / (1 + e^-v) as the kernels compute it: NOTE: once e^-v overflows float32 (v < -88.72)
// the result is exactly 0, not the subnormal e^v, as in the scalar code and PyTorch.
double sigmoid_ref(double v) {
  const double e = std::exp(-v);
  return e > static_cast<double>(Limits::max()) ? 0.0 : 1.0 / (1.0 + e);
}

// exp, sigmoid, tanh: a polynomial of ~1 ulp, one power-of-two scaling and at most two more
// roundings (sigmoid's add and divide); 4e-7 is ~3.4 ulp.
constexpr double kTightRtol = 4e-7;

TEST(VecMath, ExpMatchesDouble) {
  check_forward("exp", [](const Tensor& t) { return exp(t); },
                [](double v) { return std::exp(v); }, kTightRtol, kSubnormalStep);
}

TEST(VecMath, SigmoidMatchesDouble) {
  check_forward("sigmoid", [](const Tensor& t) { return F::sigmoid(t); }, sigmoid_ref,
                kTightRtol, kSubnormalStep);
}

TEST(VecMath, TanhMatchesDouble) {
  check_forward("tanh", [](const Tensor& t) { return F::tanh(t); },
                [](double v) { return std::tanh(v); }, kTightRtol, 0.0);
}

TEST(VecMath, LogMatchesDouble) {
  // The polynomial for log(1 + f) on [sqrt(1/2) - 1, sqrt(2) - 1] is ~1 ulp, plus the roundings
  // of adding e * ln2 in two parts; 4e-7 is ~3.4 ulp.
  check_forward("log", [](const Tensor& t) { return log(t); },
                [](double v) { return std::log(v); }, kTightRtol, 0.0);
}

TEST(VecMath, EluMatchesDouble) {
  // exp(x) - 1 for |x| >= 0.5 amplifies exp's error by up to 2.5x; 1e-6 is ~8 ulp. The
  // absolute floors: alpha * x for subnormal x rounds to the subnormal grid (forward), and a
  // subnormal exp(x) is rounded once, scaled by alpha and rounded again (backward).
  const double alpha = 1.3;
  const double a = static_cast<double>(static_cast<float>(alpha));  // as the kernel holds it
  check_forward("elu", [=](const Tensor& t) { return F::elu(t, alpha); },
                [=](double v) { return v > 0 ? v : a * std::expm1(v); }, 1e-6, kSubnormalStep);
  check_backward("elu backward", [=](const Tensor& t) { return F::elu(t, alpha); },
                 [=](double v) { return v > 0 ? 1.0 : a * std::exp(v); }, 1e-6,
                 2 * kSubnormalStep);
}

TEST(VecMath, SoftplusMatchesDouble) {
  // beta = 1 and 3: beta * x (rounded in float32, as in the kernel) feeds exp then log1p, and
  // the result is divided by beta; 1e-6 (~8 ulp) covers the four roundings and both errors.
  for (const double beta : {1.0, 3.0}) {
    const double b = static_cast<double>(static_cast<float>(beta));
    const auto z_of = [b](double v) {
      return static_cast<double>(static_cast<float>(b) * static_cast<float>(v));
    };
    check_forward("softplus beta " + std::to_string(beta),
                  [=](const Tensor& t) { return F::softplus(t, beta); },
                  [=](double v) { return z_of(v) > 20 ? v : std::log1p(std::exp(z_of(v))) / b; },
                  1e-6, kSubnormalStep);
    check_backward("softplus backward beta " + std::to_string(beta),
                   [=](const Tensor& t) { return F::softplus(t, beta); },
                   [=](double v) { return z_of(v) > 20 ? 1.0 : sigmoid_ref(z_of(v)); }, 1e-6,
                   kSubnormalStep);
  }
}

TEST(VecMath, GeluMatchesDouble) {
  // erf's rational approximation is good to ~1e-7 absolute; 0.5 * x * (1 + erf) turns that into
  // an absolute error ~|x| * 1e-7 where 1 + erf cancels (x << 0), hence atol 1e-6 beside the
  // 1e-6 relative (~8 ulp) for the roundings of the product.
  const double inv_sqrt2 = 0.70710678118654752440, inv_sqrt_2pi = 0.39894228040143267794;
  check_forward("gelu", [](const Tensor& t) { return F::gelu(t); },
                [=](double v) { return 0.5 * v * (1.0 + std::erf(v * inv_sqrt2)); }, 1e-6, 1e-6);
  // The backward adds x * pdf(x), whose exp(-x^2 / 2) rounds x^2 in float32 first: for |x| near
  // 5 that relative 6e-8 on x^2 / 2 = 12.5 costs 1e-6 relative on the term; 2e-6 covers it.
  check_backward("gelu backward", [](const Tensor& t) { return F::gelu(t); },
                 [=](double v) {
                   const double cdf = 0.5 * (1.0 + std::erf(v * inv_sqrt2));
                   return cdf + v * inv_sqrt_2pi * std::exp(-0.5 * v * v);
                 },
                 2e-6, 1e-6);
}

// Saturation and special values, exactly.
TEST(VecMath, SaturationAndSpecialValues) {
  const float nan = Limits::quiet_NaN(), inf = Limits::infinity();
  const auto one = [](const Tensor& t) { return t.to_vector<float>(); };
  const Tensor x = from_vector<float>({100.0f, -100.0f, 20.0f, -20.0f, inf, -inf, nan, 89.0f,
                                       -104.0f, 0.0f, -0.0f});
  const auto e = one(exp(x));
  EXPECT_EQ(e[0], static_cast<float>(std::exp(100.0)));  // inf
  EXPECT_EQ(e[1], static_cast<float>(std::exp(-100.0)));  // subnormal, correctly rounded
  EXPECT_EQ(e[4], inf);
  EXPECT_EQ(e[5], 0.0f);
  EXPECT_TRUE(std::isnan(e[6]));
  EXPECT_EQ(e[7], inf);
  EXPECT_EQ(e[8], 0.0f);
  EXPECT_EQ(e[9], 1.0f);
  const auto s = one(F::sigmoid(x));
  EXPECT_EQ(s[0], 1.0f);
  EXPECT_EQ(s[1], 0.0f);
  EXPECT_EQ(s[4], 1.0f);
  EXPECT_EQ(s[5], 0.0f);
  EXPECT_TRUE(std::isnan(s[6]));
  const auto t = one(F::tanh(x));
  EXPECT_EQ(t[0], 1.0f);
  EXPECT_EQ(t[1], -1.0f);
  EXPECT_EQ(t[2], 1.0f);
  EXPECT_EQ(t[3], -1.0f);
  EXPECT_EQ(t[4], 1.0f);
  EXPECT_EQ(t[5], -1.0f);
  EXPECT_TRUE(std::isnan(t[6]));
  EXPECT_TRUE(std::signbit(t[10]));  // tanh(-0) = -0
  const auto g = one(F::gelu(x));
  EXPECT_EQ(g[0], 100.0f);
  EXPECT_EQ(g[4], inf);
  EXPECT_TRUE(std::isnan(g[6]));
  const auto el = one(F::elu(x));
  EXPECT_EQ(el[1], -1.0f);
  EXPECT_EQ(el[5], -1.0f);
  EXPECT_TRUE(std::isnan(el[6]));
  const auto sp = one(F::softplus(x));
  EXPECT_EQ(sp[0], 100.0f);
  EXPECT_EQ(sp[1], static_cast<float>(std::log1p(std::exp(-100.0))));
  EXPECT_EQ(sp[5], 0.0f);
  EXPECT_TRUE(std::isnan(sp[6]));
  const auto l = one(log(from_vector<float>({0.0f, -1.0f, inf, nan, 1.0f, Limits::denorm_min()})));
  EXPECT_EQ(l[0], -inf);
  EXPECT_TRUE(std::isnan(l[1]));
  EXPECT_EQ(l[2], inf);
  EXPECT_TRUE(std::isnan(l[3]));
  EXPECT_EQ(l[4], 0.0f);
  EXPECT_NEAR(l[5], -103.27893f, 1e-4f);
}

// softmax and log_softmax over rows of 1000 (and a non-last axis, the column kernel) against
// double. NOTE: the kernel rounds x - max to float32 before exp, which for |x - max| near 200
// is a relative 1e-5 on the result; the reference rounds it the same way, so the comparison
// measures exp and the double sum. 1e-6 relative: exp's ~2 ulp plus the scale's rounding.
TEST(VecMath, SoftmaxMatchesDouble) {
  const int64_t rows = 64, cols = 1000;
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f);
  std::vector<float> xs(static_cast<size_t>(rows * cols));
  for (float& v : xs) v = wide(rng);
  for (int64_t c = 0; c < cols; ++c) xs[static_cast<size_t>(3 * cols + c)] = 0.5f;  // a flat row
  const Tensor x = from_vector<float>(xs, {rows, cols});
  for (const int64_t dim : {int64_t{1}, int64_t{0}}) {
    const int64_t outer = dim == 1 ? rows : 1, size = dim == 1 ? cols : rows;
    const int64_t inner = dim == 1 ? 1 : cols;
    std::vector<double> want(xs.size()), want_log(xs.size());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t j = 0; j < inner; ++j) {
        const auto at = [&](int64_t k) { return static_cast<size_t>((o * size + k) * inner + j); };
        float max = xs[at(0)];
        for (int64_t k = 1; k < size; ++k) max = std::max(max, xs[at(k)]);
        double sum = 0.0;
        for (int64_t k = 0; k < size; ++k) sum += std::exp(static_cast<double>(xs[at(k)] - max));
        for (int64_t k = 0; k < size; ++k) {
          const double shifted = static_cast<double>(xs[at(k)] - max);
          want[at(k)] = std::exp(shifted) / sum;
          want_log[at(k)] = shifted - std::log(sum);
        }
      }
    }
    const std::vector<float> got = F::softmax(x, dim).to_vector<float>();
    const std::vector<float> got_log = F::log_softmax(x, dim).to_vector<float>();
    std::vector<float> index(xs.size());  // expect_all_close's "x" column: the flat index
    for (size_t i = 0; i < index.size(); ++i) index[i] = static_cast<float>(i);
    const auto lookup = [](const std::vector<double>& w) {
      return [&w](double i) { return w[static_cast<size_t>(i)]; };
    };
    expect_all_close("softmax dim " + std::to_string(dim), index, got, lookup(want), 1e-6,
                     kSubnormalStep);
    // log-softmax subtracts log(sum) in float32 from x - max; 1e-6 relative and 1e-5 absolute
    // (the spacing of floats near 100 is 7.6e-6) cover those two roundings.
    expect_all_close("log_softmax dim " + std::to_string(dim), index, got_log, lookup(want_log),
                     1e-6, 1e-5);
  }
}

}  // namespace
}  // namespace strata
