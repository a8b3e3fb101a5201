// Every op in ops.h on the CPU, against values computed by hand or by naive loops in double:
// elementwise arithmetic with broadcasting and dtype promotion, unary math, comparisons,
// where, reductions over every axis combination, argmax/argmin, matmul in all its shape
// cases, joining and indexing, and non-contiguous inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_close;
using test::expect_tensor;
using test::expect_values;
using test::f32;
using test::f64;
using test::i64;
using test::random_f32;
using test::random_f64;
using test::values_of;

Tensor iota(const Shape& shape, DType dtype = kFloat64) {
  return arange(0, static_cast<double>(numel_of(shape)), 1, dtype).view(shape);
}

// ---- elementwise binary -------------------------------------------------------------------
TEST(OpsBinary, SameShape) {
  Tensor a = f32({1, 2, 3, 4}, {2, 2});
  Tensor b = f32({10, 20, 30, 40}, {2, 2});
  expect_tensor(a + b, kFloat32, {2, 2}, {11, 22, 33, 44});
  expect_tensor(a - b, kFloat32, {2, 2}, {-9, -18, -27, -36});
  expect_tensor(a * b, kFloat32, {2, 2}, {10, 40, 90, 160});
  expect_tensor(b / a, kFloat32, {2, 2}, {10, 10, 10, 10});
  expect_tensor(add(a, b), kFloat32, {2, 2}, {11, 22, 33, 44});
  expect_tensor(div(a, b), kFloat32, {2, 2}, {0.1, 0.1, 0.1, 0.1});
}

TEST(OpsBinary, BroadcastColumnWithRow) {
  Tensor a = f64({1, 2, 3}, {3, 1});
  Tensor b = f64({10, 20, 30, 40}, {4});
  std::vector<double> sum, diff, prod, quot;
  for (double x : {1.0, 2.0, 3.0}) {
    for (double y : {10.0, 20.0, 30.0, 40.0}) {
      sum.push_back(x + y);
      diff.push_back(x - y);
      prod.push_back(x * y);
      quot.push_back(x / y);
    }
  }
  expect_tensor(a + b, kFloat64, {3, 4}, sum);
  expect_tensor(a - b, kFloat64, {3, 4}, diff);
  expect_tensor(a * b, kFloat64, {3, 4}, prod);
  expect_tensor(a / b, kFloat64, {3, 4}, quot);
  // Broadcasting is symmetric in shape.
  std::vector<double> rdiff;
  for (double x : {1.0, 2.0, 3.0})
    for (double y : {10.0, 20.0, 30.0, 40.0}) rdiff.push_back(y - x);
  expect_tensor(b - a, kFloat64, {3, 4}, rdiff);
}

TEST(OpsBinary, BroadcastThreeDims) {
  Tensor a = iota({2, 1, 3});
  Tensor b = iota({4, 1}) * 10.0;
  std::vector<double> expected;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) expected.push_back((3 * i + k) + 10.0 * j);
  expect_tensor(a + b, kFloat64, {2, 4, 3}, expected);
  // With a 0-dim tensor.
  expect_tensor(a * scalar_tensor(2, kFloat64), kFloat64, {2, 1, 3}, {0, 2, 4, 6, 8, 10});
}

TEST(OpsBinary, TensorScalar) {
  Tensor x = f32({1, 2, 4});
  expect_tensor(x + 1.5, kFloat32, {3}, {2.5, 3.5, 5.5});
  expect_tensor(x - 1, kFloat32, {3}, {0, 1, 3});
  expect_tensor(x * -2, kFloat32, {3}, {-2, -4, -8});
  expect_tensor(x / 4, kFloat32, {3}, {0.25, 0.5, 1});
  expect_tensor(add(x, 1.0), kFloat32, {3}, {2, 3, 5});
  expect_tensor(sub(x, 1.0), kFloat32, {3}, {0, 1, 3});
  expect_tensor(mul(x, 3.0), kFloat32, {3}, {3, 6, 12});
  expect_tensor(div(x, 2.0), kFloat32, {3}, {0.5, 1, 2});
}

TEST(OpsBinary, ScalarTensor) {
  Tensor x = f32({1, 2, 4});
  expect_tensor(2 - x, kFloat32, {3}, {1, 0, -2});
  expect_tensor(2 / x, kFloat32, {3}, {2, 1, 0.5});
  expect_tensor(1.5 + x, kFloat32, {3}, {2.5, 3.5, 5.5});
  expect_tensor(3 * x, kFloat32, {3}, {3, 6, 12});
  expect_tensor(rsub(x, 10), kFloat32, {3}, {9, 8, 6});
  expect_tensor(rdiv(x, 8), kFloat32, {3}, {8, 4, 2});
  expect_tensor(-x, kFloat32, {3}, {-1, -2, -4});
}

TEST(OpsBinary, IntegerArithmeticStaysInteger) {
  Tensor a = i64({7, -3, 5});
  Tensor b = i64({2, 2, -4});
  expect_tensor(a + b, kInt64, {3}, {9, -1, 1});
  expect_tensor(a - b, kInt64, {3}, {5, -5, 9});
  expect_tensor(a * b, kInt64, {3}, {14, -6, -20});
}

TEST(OpsBinary, IntegerDivisionIsTrueDivision) {
  Tensor a = i64({1, 7, -3});
  Tensor b = i64({2, 2, 4});
  expect_tensor(a / b, kFloat32, {3}, {0.5, 3.5, -0.75});
  expect_tensor(a / 2.0, kFloat32, {3}, {0.5, 3.5, -1.5});
  expect_tensor(from_vector<uint8_t>({3, 9}) / from_vector<uint8_t>({2, 4}), kFloat32, {2},
                {1.5, 2.25});
}

TEST(OpsBinary, DtypePromotion) {
  Tensor i = i64({1, 2, 3});
  Tensor f = f32({0.5f, 0.25f, -1.0f});
  Tensor d = f64({0.1, 0.2, 0.3});
  expect_tensor(i + f, kFloat32, {3}, {1.5, 2.25, 2});
  expect_tensor(f + i, kFloat32, {3}, {1.5, 2.25, 2});
  expect_tensor(f * d, kFloat64, {3},
                {0.5 * 0.1, 0.25 * 0.2, -0.3});
  expect_tensor(i - d, kFloat64, {3}, {0.9, 1.8, 2.7});
  Tensor u = from_vector<uint8_t>({1, 2, 3});
  expect_tensor(u + i, kInt64, {3}, {2, 4, 6});
  Tensor b = from_vector<bool>({true, false, true});
  expect_tensor(b * f, kFloat32, {3}, {0.5, 0, -1});
  expect_tensor(b + u, kUInt8, {3}, {2, 2, 4});
}

TEST(OpsBinary, MaximumMinimumBroadcast) {
  Tensor a = f32({1, 5, 3}, {3, 1});
  Tensor b = f32({2, 4});
  expect_tensor(maximum(a, b), kFloat32, {3, 2}, {2, 4, 5, 5, 3, 4});
  expect_tensor(minimum(a, b), kFloat32, {3, 2}, {1, 1, 2, 4, 2, 3});
  expect_tensor(maximum(i64({-1, 7}), i64({3, 2})), kInt64, {2}, {3, 7});
}

// ---- unary --------------------------------------------------------------------------------
TEST(OpsUnary, NegAbsSign) {
  Tensor x = f32({-2.5f, 0.0f, 3.0f});
  expect_tensor(neg(x), kFloat32, {3}, {2.5, 0, -3});
  expect_tensor(strata::abs(x), kFloat32, {3}, {2.5, 0, 3});
  expect_tensor(sign(x), kFloat32, {3}, {-1, 0, 1});
  expect_tensor(x.abs(), kFloat32, {3}, {2.5, 0, 3});
  expect_tensor(x.neg(), kFloat32, {3}, {2.5, 0, -3});
  expect_tensor(strata::abs(i64({-4, 4})), kInt64, {2}, {4, 4});
  expect_tensor(sign(i64({-4, 0, 9})), kInt64, {3}, {-1, 0, 1});
}

TEST(OpsUnary, ExpLogSqrtReciprocal) {
  const std::vector<double> v = {0.5, 1.0, 2.0, 9.0};
  Tensor x = f64(v);
  std::vector<double> e, l, s, r;
  for (double a : v) {
    e.push_back(std::exp(a));
    l.push_back(std::log(a));
    s.push_back(std::sqrt(a));
    r.push_back(1.0 / a);
  }
  expect_tensor(strata::exp(x), kFloat64, {4}, e);
  expect_tensor(strata::log(x), kFloat64, {4}, l);
  expect_tensor(strata::sqrt(x), kFloat64, {4}, s);
  expect_tensor(reciprocal(x), kFloat64, {4}, r);
  expect_tensor(x.exp(), kFloat64, {4}, e);
  expect_tensor(x.log(), kFloat64, {4}, l);
  expect_tensor(x.sqrt(), kFloat64, {4}, s);
}

TEST(OpsUnary, Float32MathMatchesDouble) {
  Tensor x = random_f32({100}, 0.1, 5.0, 11);
  const std::vector<double> v = values_of(x);
  std::vector<double> e, l, s;
  for (double a : v) {
    e.push_back(std::exp(a));
    l.push_back(std::log(a));
    s.push_back(std::sqrt(a));
  }
  expect_tensor(strata::exp(x), kFloat32, {100}, e);
  expect_tensor(strata::log(x), kFloat32, {100}, l);
  expect_tensor(strata::sqrt(x), kFloat32, {100}, s);
}

TEST(OpsUnary, SpecialValues) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  Tensor x = f64({0.0, -1.0});
  expect_values(strata::log(x), {2}, {-kInf, kNaN});
  expect_values(strata::sqrt(x), {2}, {0.0, kNaN});
  expect_values(reciprocal(f64({0.0})), {1}, {kInf});
}

TEST(OpsUnary, PowScalar) {
  Tensor x = f64({1, 2, 3, 4});
  expect_tensor(strata::pow(x, 2.0), kFloat64, {4}, {1, 4, 9, 16});
  expect_tensor(strata::pow(x, 0.5), kFloat64, {4}, {1, std::sqrt(2.0), std::sqrt(3.0), 2});
  expect_tensor(strata::pow(x, -1.0), kFloat64, {4}, {1, 0.5, 1.0 / 3, 0.25});
  expect_tensor(x.pow(3), kFloat64, {4}, {1, 8, 27, 64});
  expect_tensor(strata::pow(f64({-2, 3}), 2.0), kFloat64, {2}, {4, 9});
  expect_tensor(strata::pow(f64({-2}), 3.0), kFloat64, {1}, {-8});
}

TEST(OpsUnary, PowTensorExponentBroadcast) {
  Tensor base = f64({2, 3, 4, 5, 6, 7}, {2, 3});
  Tensor e = f64({1, 2, 0.5});
  std::vector<double> expected = {2, 9, 2, 5, 36, std::sqrt(7.0)};
  expect_tensor(strata::pow(base, e), kFloat64, {2, 3}, expected);
  Tensor col = f64({2, 3}, {2, 1});
  expect_tensor(strata::pow(col, f64({0, 1, 2})), kFloat64, {2, 3}, {1, 2, 4, 1, 3, 9});
}

TEST(OpsUnary, Clamp) {
  Tensor x = f32({-2, -0.5, 0, 0.5, 2});
  expect_tensor(clamp(x, -1.0, 1.0), kFloat32, {5}, {-1, -0.5, 0, 0.5, 1});
  expect_tensor(clamp(x, 0.0, std::nullopt), kFloat32, {5}, {0, 0, 0, 0.5, 2});
  expect_tensor(clamp(x, std::nullopt, 0.25), kFloat32, {5}, {-2, -0.5, 0, 0.25, 0.25});
  expect_tensor(x.clamp(-0.5, 0.5), kFloat32, {5}, {-0.5, -0.5, 0, 0.5, 0.5});
  expect_tensor(clamp(i64({-5, 3, 9}), 0.0, 4.0), kInt64, {3}, {0, 3, 4});
}

// ---- comparisons and where ----------------------------------------------------------------
TEST(OpsCompare, TensorTensorBroadcast) {
  Tensor a = f32({1, 2, 3}, {3, 1});
  Tensor b = f32({2, 3});
  // a vs b: rows (1 vs 2, 1 vs 3), (2 vs 2, 2 vs 3), (3 vs 2, 3 vs 3)
  expect_tensor(eq(a, b), kBool, {3, 2}, {0, 0, 1, 0, 0, 1});
  expect_tensor(ne(a, b), kBool, {3, 2}, {1, 1, 0, 1, 1, 0});
  expect_tensor(lt(a, b), kBool, {3, 2}, {1, 1, 0, 1, 0, 0});
  expect_tensor(le(a, b), kBool, {3, 2}, {1, 1, 1, 1, 0, 1});
  expect_tensor(gt(a, b), kBool, {3, 2}, {0, 0, 0, 0, 1, 0});
  expect_tensor(ge(a, b), kBool, {3, 2}, {0, 0, 1, 0, 1, 1});
  expect_tensor(a == b, kBool, {3, 2}, {0, 0, 1, 0, 0, 1});
  expect_tensor(a < b, kBool, {3, 2}, {1, 1, 0, 1, 0, 0});
  expect_tensor(a >= b, kBool, {3, 2}, {0, 0, 1, 0, 1, 1});
}

TEST(OpsCompare, TensorScalar) {
  Tensor x = f64({-1, 0, 2.5});
  expect_tensor(x == 0.0, kBool, {3}, {0, 1, 0});
  expect_tensor(x != 0.0, kBool, {3}, {1, 0, 1});
  expect_tensor(x < 0.0, kBool, {3}, {1, 0, 0});
  expect_tensor(x <= 0.0, kBool, {3}, {1, 1, 0});
  expect_tensor(x > 0.0, kBool, {3}, {0, 0, 1});
  expect_tensor(x >= 2.5, kBool, {3}, {0, 0, 1});
  expect_tensor(gt(i64({1, 5}), 2.5), kBool, {2}, {0, 1});
}

TEST(OpsCompare, MixedDtypesPromote) {
  expect_tensor(eq(i64({1, 2}), f32({1.0f, 2.5f})), kBool, {2}, {1, 0});
  expect_tensor(lt(f32({0.1f}), f64({0.1})), kBool, {1},
                {static_cast<double>(0.1f) < 0.1 ? 1.0 : 0.0});
}

TEST(OpsWhere, Broadcasting) {
  Tensor cond = from_vector<bool>({true, false, true}, {3, 1});
  Tensor a = f32({1, 2, 3, 4});
  Tensor b = f32({-1});
  expect_tensor(where(cond, a, b), kFloat32, {3, 4},
                {1, 2, 3, 4, -1, -1, -1, -1, 1, 2, 3, 4});
  Tensor c2 = from_vector<bool>({true, false});
  expect_tensor(where(c2, f64({1, 2, 3, 4}, {2, 2}), f64({9, 8}, {2, 1})), kFloat64, {2, 2},
                {1, 9, 3, 8});
}

TEST(OpsWhere, FromComparison) {
  Tensor x = f64({-2, 3, -1, 4});
  expect_tensor(where(x > 0.0, x, zeros_like(x)), kFloat64, {4}, {0, 3, 0, 4});
}

// ---- reductions ---------------------------------------------------------------------------
// x[i][j][k] = 100 i + 10 j + k over [2,3,4].
Tensor cube() {
  std::vector<double> v;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) v.push_back(100 * i + 10 * j + k);
  return f64(v, {2, 3, 4});
}

TEST(OpsReduce, SumAll) {
  Tensor x = cube();
  // sum = 12*100 + 8*(0+10+20) + 6*(0+1+2+3) = 1200 + 240 + 36
  expect_tensor(sum(x), kFloat64, {}, {1476});
  expect_tensor(x.sum(), kFloat64, {}, {1476});
  expect_tensor(sum(x, {}, true), kFloat64, {1, 1, 1}, {1476});
  expect_tensor(sum(x, {0, 1, 2}), kFloat64, {}, {1476});
}

TEST(OpsReduce, SumOneAxis) {
  Tensor x = cube();
  std::vector<double> s0, s1, s2;
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 4; ++k) s0.push_back((10 * j + k) + (100 + 10 * j + k));
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) s1.push_back(3 * (100 * i + k) + 30);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) s2.push_back(4 * (100 * i + 10 * j) + 6);
  expect_tensor(sum(x, {0}), kFloat64, {3, 4}, s0);
  expect_tensor(sum(x, {1}), kFloat64, {2, 4}, s1);
  expect_tensor(sum(x, {2}), kFloat64, {2, 3}, s2);
  expect_tensor(sum(x, {-1}), kFloat64, {2, 3}, s2);
  expect_tensor(sum(x, {-3}), kFloat64, {3, 4}, s0);
  expect_tensor(sum(x, {1}, true), kFloat64, {2, 1, 4}, s1);
  expect_tensor(x.sum({2}, true), kFloat64, {2, 3, 1}, s2);
}

TEST(OpsReduce, SumSeveralAxes) {
  Tensor x = cube();
  std::vector<double> s02;  // over i and k: for each j
  for (int j = 0; j < 3; ++j) s02.push_back(4 * 100 + 8 * 10 * j + 2 * 6);
  expect_tensor(sum(x, {0, 2}), kFloat64, {3}, s02);
  expect_tensor(sum(x, {2, 0}), kFloat64, {3}, s02);
  expect_tensor(sum(x, {0, -1}, true), kFloat64, {1, 3, 1}, s02);
}

TEST(OpsReduce, MeanAxes) {
  Tensor x = cube();
  expect_tensor(mean(x), kFloat64, {}, {1476.0 / 24});
  std::vector<double> m1;
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 4; ++k) m1.push_back(100 * i + k + 10);
  expect_tensor(mean(x, {1}), kFloat64, {2, 4}, m1);
  expect_tensor(mean(x, {-2}, true), kFloat64, {2, 1, 4}, m1);
  std::vector<double> m02;
  for (int j = 0; j < 3; ++j) m02.push_back(50 + 10 * j + 1.5);
  expect_tensor(mean(x, {0, 2}), kFloat64, {3}, m02);
  expect_tensor(x.mean(), kFloat64, {}, {61.5});
  expect_tensor(f32({1, 2, 3, 4}).mean(), kFloat32, {}, {2.5});
}

TEST(OpsReduce, MaxMinAxes) {
  Tensor x = f64({3, -1, 7, 2, 9, -5}, {2, 3});
  expect_tensor(strata::max(x), kFloat64, {}, {9});
  expect_tensor(strata::min(x), kFloat64, {}, {-5});
  expect_tensor(strata::max(x, {0}), kFloat64, {3}, {3, 9, 7});
  expect_tensor(strata::min(x, {0}), kFloat64, {3}, {2, -1, -5});
  expect_tensor(strata::max(x, {1}), kFloat64, {2}, {7, 9});
  expect_tensor(strata::min(x, {-1}, true), kFloat64, {2, 1}, {-1, -5});
  expect_tensor(x.max({1}, true), kFloat64, {2, 1}, {7, 9});
  expect_tensor(x.max(), kFloat64, {}, {9});
  expect_tensor(x.min(), kFloat64, {}, {-5});
  Tensor c = cube();
  expect_tensor(strata::max(c, {0, 2}), kFloat64, {3}, {103, 113, 123});
  expect_tensor(strata::min(c, {0, 2}, true), kFloat64, {1, 3, 1}, {0, 10, 20});
  expect_tensor(strata::max(i64({4, -2, 8})), kInt64, {}, {8});
}

TEST(OpsReduce, IntegerAndBoolSums) {
  expect_tensor(sum(i64({1, 2, 3, 4}, {2, 2}), {0}), kInt64, {2}, {4, 6});
  // bool sums promote (backend.h: "the op promotes first"), counting the trues.
  Tensor b = from_vector<bool>({true, false, true, true});
  Tensor s = sum(b);
  EXPECT_EQ(s.dtype(), kInt64);
  EXPECT_EQ(s.item<int64_t>(), 3);
}

TEST(OpsReduce, Float32SumOfManyElements) {
  Tensor x = random_f32({1000}, -1.0, 1.0, 3);
  double ref = 0;
  for (double v : values_of(x)) ref += v;
  // f32 summation of 1000 terms of magnitude <= 1: error <= 1000 * 6e-8 * 1 = 6e-5 worst case.
  expect_values(sum(x), {}, {ref}, 0.0, 6e-5);
}

TEST(OpsReduce, NonContiguousInputs) {
  Tensor base = cube();
  Tensor t = base.transpose(0, 2);  // [4,3,2]: t[k][j][i] = 100 i + 10 j + k
  std::vector<double> s2;           // sum over i
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j) s2.push_back(100 + 2 * (10 * j + k));
  expect_tensor(sum(t, {2}), kFloat64, {4, 3}, s2);
  std::vector<double> mx0;  // max over k
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 2; ++i) mx0.push_back(100 * i + 10 * j + 3);
  expect_tensor(strata::max(t, {0}), kFloat64, {3, 2}, mx0);
  Tensor sliced = base.slice(2, 0, 4, 2);  // k in {0, 2}
  std::vector<double> s_last;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) s_last.push_back(2 * (100 * i + 10 * j) + 2);
  expect_tensor(sum(sliced, {-1}), kFloat64, {2, 3}, s_last);
  double sliced_total = 0;
  for (double v : s_last) sliced_total += v;
  expect_tensor(mean(sliced), kFloat64, {}, {sliced_total / 12});
  Tensor expanded = f64({1, 2, 3}, {3, 1}).expand({3, 4});
  expect_tensor(sum(expanded, {1}), kFloat64, {3}, {4, 8, 12});
  expect_tensor(sum(expanded), kFloat64, {}, {24});
}

TEST(OpsReduce, ArgmaxArgmin) {
  Tensor x = f64({3, -1, 7, 2, 9, -5}, {2, 3});
  expect_tensor(argmax(x), kInt64, {}, {4});
  expect_tensor(argmin(x), kInt64, {}, {5});
  expect_tensor(argmax(x, 0), kInt64, {3}, {0, 1, 0});
  expect_tensor(argmin(x, 1), kInt64, {2}, {1, 2});
  expect_tensor(argmax(x, -1, true), kInt64, {2, 1}, {2, 1});
  expect_tensor(x.argmax(), kInt64, {}, {4});
  expect_tensor(x.argmin(0, true), kInt64, {1, 3}, {1, 0, 1});
}

TEST(OpsReduce, ArgmaxFirstIndexOnTies) {
  expect_tensor(argmax(f32({1, 3, 3, 0})), kInt64, {}, {1});
  expect_tensor(argmin(f32({2, 0, 5, 0})), kInt64, {}, {1});
  Tensor x = f64({4, 4, 1, 1, 2, 2}, {3, 2});
  expect_tensor(argmax(x, 1), kInt64, {3}, {0, 0, 0});
  expect_tensor(argmax(f64({5, 1, 5, 1}, {2, 2}), 0), kInt64, {2}, {0, 0});
  expect_tensor(argmax(i64({2, 9, 9})), kInt64, {}, {1});
}

TEST(OpsReduce, ArgmaxOfTransposed) {
  Tensor x = f64({3, -1, 7, 2, 9, -5}, {2, 3}).t();  // [3,2]: 3 2 / -1 9 / 7 -5
  expect_tensor(argmax(x), kInt64, {}, {3});
  expect_tensor(argmax(x, 0), kInt64, {2}, {2, 1});
}

// ---- matmul -------------------------------------------------------------------------------
// torch.matmul in naive double loops: 1-D operands are promoted to matrices and the added dim
// removed; batch dims broadcast.
Tensor naive_matmul(const Tensor& a_in, const Tensor& b_in) {
  Shape as = a_in.shape(), bs = b_in.shape();
  const std::vector<double> a = values_of(a_in), b = values_of(b_in);
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  EXPECT_EQ(bs[bs.size() - 2], K);
  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(a_batch, b_batch, "naive_matmul");
  const int64_t nb = numel_of(batch);
  std::vector<double> out(static_cast<size_t>(nb * M * N));
  auto batch_offset = [&](const Shape& own, int64_t flat) {
    // Index of batch element `flat` of `batch` into a batch shape broadcast to it.
    int64_t offset = 0, stride = 1;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t idx = flat % batch[d];
      flat /= batch[d];
      const int64_t own_d = static_cast<int64_t>(d) - static_cast<int64_t>(batch.size() - own.size());
      if (own_d >= 0) {
        const int64_t size = own[static_cast<size_t>(own_d)];
        offset += (size == 1 ? 0 : idx) * stride;
        stride *= size;
      }
    }
    return offset;
  };
  for (int64_t n = 0; n < nb; ++n) {
    const int64_t ao = batch_offset(a_batch, n) * M * K, bo = batch_offset(b_batch, n) * K * N;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += a[ao + i * K + k] * b[bo + k * N + j];
        out[static_cast<size_t>((n * M + i) * N + j)] = acc;
      }
  }
  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(M);
  if (!b_vec) out_shape.push_back(N);
  return f64(out).view(out_shape);
}

TEST(OpsMatmul, HandComputed2D) {
  Tensor a = f32({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = f32({7, 8, 9, 10, 11, 12}, {3, 2});
  expect_tensor(matmul(a, b), kFloat32, {2, 2}, {58, 64, 139, 154});
  expect_tensor(a.matmul(b), kFloat32, {2, 2}, {58, 64, 139, 154});
}

TEST(OpsMatmul, VectorCases) {
  Tensor v = f64({1, 2, 3});
  Tensor w = f64({4, 5, 6});
  expect_tensor(matmul(v, w), kFloat64, {}, {32});
  Tensor m = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  expect_tensor(matmul(m, v), kFloat64, {2}, {14, 32});
  Tensor m2 = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  expect_tensor(matmul(v, m2), kFloat64, {2}, {22, 28});
}

TEST(OpsMatmul, RandomShapesAgainstNaive) {
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {
      {{5}, {5}},          {{3, 4}, {4, 2}},          {{3, 4}, {4}},
      {{4}, {4, 3}},       {{2, 3, 4}, {2, 4, 5}},    {{2, 1, 3, 4}, {5, 4, 2}},
      {{2, 3, 4}, {4, 5}}, {{3, 4}, {2, 4, 5}},       {{4}, {2, 4, 3}},
      {{2, 3, 4}, {4}},    {{1, 1}, {1, 1}},          {{7, 1}, {1, 6}},
  };
  uint32_t seed = 100;
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_str(c.a) + " @ " + shape_str(c.b));
    Tensor a = random_f64(c.a, -1, 1, seed++);
    Tensor b = random_f64(c.b, -1, 1, seed++);
    Tensor out = matmul(a, b);
    EXPECT_EQ(out.dtype(), kFloat64);
    expect_close(out, naive_matmul(a, b));
  }
}

TEST(OpsMatmul, BatchBroadcastShape) {
  Tensor a = random_f64({2, 1, 3, 4}, -1, 1, 1);
  Tensor b = random_f64({5, 4, 2}, -1, 1, 2);
  Tensor out = matmul(a, b);
  EXPECT_EQ(out.shape(), (Shape{2, 5, 3, 2}));
  expect_close(out, naive_matmul(a, b));
}

TEST(OpsMatmul, TransposedOperands) {
  Tensor a = random_f64({4, 3}, -1, 1, 5);  // used as a.t(): [3,4]
  Tensor b = random_f64({2, 4}, -1, 1, 6);  // used as b.t(): [4,2]
  expect_close(matmul(a.t(), b.t()), naive_matmul(a.t().contiguous(), b.t().contiguous()));
  expect_close(matmul(a.t(), b.t().contiguous()), naive_matmul(a.t().contiguous(), b.t().contiguous()));
  // Batched, transposed inner dims and a sliced (strided) operand.
  Tensor c = random_f64({2, 5, 3}, -1, 1, 7);
  Tensor d = random_f64({2, 5, 8}, -1, 1, 8).slice(2, 0, 8, 2);  // [2,5,4], stride 2
  expect_close(matmul(c.transpose(1, 2), d),
               naive_matmul(c.transpose(1, 2).contiguous(), d.contiguous()));
  // Operands whose inner matrix is neither row- nor column-major.
  Tensor e = random_f64({6, 6}, -1, 1, 9).slice(0, 0, 6, 2).slice(1, 0, 6, 2);  // [3,3]
  expect_close(matmul(e, e), naive_matmul(e.contiguous(), e.contiguous()));
  // An expanded (stride-0) batch.
  Tensor f = random_f64({3, 4}, -1, 1, 10).expand({2, 3, 4});
  Tensor g = random_f64({2, 4, 2}, -1, 1, 11);
  expect_close(matmul(f, g), naive_matmul(f.contiguous(), g));
}

TEST(OpsMatmul, Float32LargerAgainstDouble) {
  const int64_t M = 64, K = 128, N = 32;
  Tensor a = random_f32({M, K}, -1, 1, 21);
  Tensor b = random_f32({K, N}, -1, 1, 22);
  Tensor out = matmul(a, b);
  EXPECT_EQ(out.dtype(), kFloat32);
  Tensor ref = naive_matmul(a, b);  // in double from the same f32 inputs
  // Rounding in a length-K f32 dot product is bounded by K * 2^-24 * sum_k |a_ik b_kj|
  // (Higham 3.1); use that bound with the largest such sum over the output.
  const std::vector<double> av = values_of(a), bv = values_of(b);
  double max_abs_sum = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += std::abs(av[i * K + k] * bv[k * N + j]);
      max_abs_sum = std::max(max_abs_sum, s);
    }
  const double atol = static_cast<double>(K) * std::ldexp(1.0, -24) * max_abs_sum;
  expect_close(out, ref, 0.0, atol);
}

TEST(OpsMatmul, Float32Batched) {
  Tensor a = random_f32({3, 5, 7}, -1, 1, 31);
  Tensor b = random_f32({7, 4}, -1, 1, 32);
  // f32 dot products of length 7 with |terms| <= 1: rounding <= 7 * 6e-8 * 7 ~ 3e-6.
  expect_close(matmul(a, b), naive_matmul(a, b), 0.0, 3e-6);
}

// ---- joining and indexing -----------------------------------------------------------------
TEST(OpsJoin, CatAlongDims) {
  Tensor a = f64({1, 2, 3, 4}, {2, 2});
  Tensor b = f64({5, 6}, {1, 2});
  Tensor c = f64({7, 8, 9, 10, 11, 12}, {2, 3});
  expect_tensor(cat({a, b}), kFloat64, {3, 2}, {1, 2, 3, 4, 5, 6});
  expect_tensor(cat({a, c}, 1), kFloat64, {2, 5}, {1, 2, 7, 8, 9, 3, 4, 10, 11, 12});
  expect_tensor(cat({a, c}, -1), kFloat64, {2, 5}, {1, 2, 7, 8, 9, 3, 4, 10, 11, 12});
  expect_tensor(cat({a, b, a}, -2), kFloat64, {5, 2}, {1, 2, 3, 4, 5, 6, 1, 2, 3, 4});
  expect_tensor(cat({a}), kFloat64, {2, 2}, {1, 2, 3, 4});
}

TEST(OpsJoin, CatThreeDAndViews) {
  Tensor x = iota({2, 2, 2});
  Tensor y = iota({2, 2, 1}) + 100.0;
  expect_tensor(cat({x, y}, 2), kFloat64, {2, 2, 3},
                {0, 1, 100, 2, 3, 101, 4, 5, 102, 6, 7, 103});
  // Non-contiguous inputs.
  Tensor t = f64({1, 2, 3, 4}, {2, 2}).t();  // 1 3 / 2 4
  expect_tensor(cat({t, t}, 0), kFloat64, {4, 2}, {1, 3, 2, 4, 1, 3, 2, 4});
  expect_tensor(cat({i64({1}), i64({2, 3})}), kInt64, {3}, {1, 2, 3});
}

TEST(OpsJoin, Stack) {
  Tensor a = f64({1, 2, 3});
  Tensor b = f64({4, 5, 6});
  expect_tensor(stack({a, b}), kFloat64, {2, 3}, {1, 2, 3, 4, 5, 6});
  expect_tensor(stack({a, b}, 1), kFloat64, {3, 2}, {1, 4, 2, 5, 3, 6});
  expect_tensor(stack({a, b}, -1), kFloat64, {3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor m = f64({1, 2, 3, 4}, {2, 2});
  expect_tensor(stack({m, m * 10.0}, 1), kFloat64, {2, 2, 2}, {1, 2, 10, 20, 3, 4, 30, 40});
  expect_tensor(stack({a}), kFloat64, {1, 3}, {1, 2, 3});
}

TEST(OpsIndex, IndexSelect) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {3, 2});
  expect_tensor(index_select(x, 0, i64({2, 0, 2})), kFloat64, {3, 2}, {5, 6, 1, 2, 5, 6});
  expect_tensor(index_select(x, 1, i64({1})), kFloat64, {3, 1}, {2, 4, 6});
  expect_tensor(index_select(x, -1, i64({1, 0})), kFloat64, {3, 2}, {2, 1, 4, 3, 6, 5});
  expect_tensor(index_select(x.t(), 0, i64({1})), kFloat64, {1, 3}, {2, 4, 6});
  expect_tensor(index_select(i64({7, 8, 9}), 0, i64({2, 2})), kInt64, {2}, {9, 9});
}

TEST(OpsIndex, Gather) {
  Tensor x = f64({1, 2, 3, 4, 5, 6}, {2, 3});
  // dim 1: out[i][j] = x[i][index[i][j]]
  expect_tensor(gather(x, 1, i64({2, 0, 1, 1}, {2, 2})), kFloat64, {2, 2}, {3, 1, 5, 5});
  // dim 0: out[i][j] = x[index[i][j]][j]
  expect_tensor(gather(x, 0, i64({1, 0, 1}, {1, 3})), kFloat64, {1, 3}, {4, 2, 6});
  expect_tensor(gather(x, -1, i64({0, 2}, {2, 1})), kFloat64, {2, 1}, {1, 6});
  // Non-contiguous source.
  expect_tensor(gather(x.t(), 1, i64({1, 0, 0}, {3, 1})), kFloat64, {3, 1}, {4, 2, 3});
}

TEST(OpsIndex, OneHot) {
  expect_tensor(one_hot(i64({0, 2, 1}), 4), kInt64, {3, 4}, {1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0});
  expect_tensor(one_hot(i64({0, 3})), kInt64, {2, 4}, {1, 0, 0, 0, 0, 0, 0, 1});
  expect_tensor(one_hot(i64({1, 0, 2, 2}, {2, 2}), 3), kInt64, {2, 2, 3},
                {0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1});
}

TEST(OpsAllclose, Tolerances) {
  Tensor a = f64({1.0, 100.0});
  EXPECT_TRUE(allclose(a, f64({1.0 + 5e-6, 100.0 + 5e-4})));
  EXPECT_FALSE(allclose(a, f64({1.001, 100.0})));
  EXPECT_FALSE(allclose(a, f64({1.0, 100.01})));
  EXPECT_TRUE(allclose(a, f64({1.001, 100.0}), 0.0, 0.01));
  EXPECT_TRUE(allclose(a, f64({1.01, 101.0}), 0.011, 0.0));  // |b|-relative
  EXPECT_TRUE(allclose(f32({1, 2}), f32({1, 2})));
  EXPECT_TRUE(allclose(f64({1, 2, 3, 4}, {2, 2}).t(), f64({1, 3, 2, 4}, {2, 2})));
}

// ---- larger inputs (the CPU backend's parallel paths) --------------------------------------
// Rigorous bound on the rounding of an n-term double sum: n * 2^-53 * sum |x|.
double sum_bound(int64_t n, double abs_sum) {
  return static_cast<double>(n) * std::ldexp(1.0, -53) * abs_sum;
}

TEST(OpsLarge, ReductionsAgainstNaive) {
  const int64_t R = 300, C = 1000;
  Tensor x = random_f64({R, C}, -1, 1, 51);
  const std::vector<double> v = values_of(x);
  std::vector<double> rows(R, 0), cols(C, 0), row_max(R, -2), col_min(C, 2);
  std::vector<double> row_argmax(R, 0);
  double total = 0, abs_total = 0;
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const double e = v[static_cast<size_t>(i * C + j)];
      rows[i] += e;
      cols[j] += e;
      total += e;
      abs_total += std::abs(e);
      if (e > row_max[i]) {
        row_max[i] = e;
        row_argmax[i] = static_cast<double>(j);
      }
      col_min[j] = std::min(col_min[j], e);
    }
  expect_values(sum(x), {}, {total}, 0.0, sum_bound(R * C, abs_total));
  expect_values(sum(x, {1}), {R}, rows, 0.0, sum_bound(C, C));
  expect_values(sum(x, {0}), {C}, cols, 0.0, sum_bound(R, R));
  expect_values(sum(x.t(), {1}), {C}, cols, 0.0, sum_bound(R, R));
  expect_values(sum(x.t(), {0}), {R}, rows, 0.0, sum_bound(C, C));
  expect_values(strata::max(x, {1}), {R}, row_max, 0.0, 0.0);
  expect_values(strata::min(x, {0}), {C}, col_min, 0.0, 0.0);
  expect_values(strata::min(x.t(), {1}), {C}, col_min, 0.0, 0.0);
  expect_values(argmax(x, 1), {R}, row_argmax, 0.0, 0.0);
  expect_values(argmax(x.t(), 0), {R}, row_argmax, 0.0, 0.0);
}

TEST(OpsLarge, BroadcastElementwiseAgainstNaive) {
  const int64_t R = 300, C = 1000;
  Tensor x = random_f64({R, C}, -1, 1, 52);
  Tensor row = random_f64({C}, -1, 1, 53);
  Tensor col = random_f64({R, 1}, 0.5, 1.5, 54);
  const std::vector<double> xv = values_of(x), rv = values_of(row), cv = values_of(col);
  std::vector<double> expected(static_cast<size_t>(R * C)), expected_t(static_cast<size_t>(R * C));
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const double e = (xv[i * C + j] + rv[j]) / cv[i];
      expected[static_cast<size_t>(i * C + j)] = e;
      expected_t[static_cast<size_t>(j * R + i)] = std::exp(xv[i * C + j]);
    }
  expect_values((x + row) / col, {R, C}, expected);
  expect_values(strata::exp(x.t()), {C, R}, expected_t);
}

TEST(OpsLarge, Float32MatmulNonSquare) {
  const int64_t M = 33, K = 257, N = 65;  // odd sizes off any blocking grid
  Tensor a = random_f32({M, K}, -1, 1, 55);
  Tensor b = random_f32({N, K}, -1, 1, 56).t();  // column-major operand
  // Bound on an f32 dot product of length K with |terms| <= 1 (Higham 3.1): K * 2^-24 * K.
  expect_close(matmul(a, b), naive_matmul(a, b.contiguous()), 0.0,
               static_cast<double>(K * K) * std::ldexp(1.0, -24));
}

TEST(OpsLarge, SameResultWithOneThread) {
  Tensor x = random_f64({200, 500}, -1, 1, 57);
  const int threads = get_num_threads();
  EXPECT_GE(threads, 1);
  Tensor many_rows = sum(x, {1}), many_all = sum(x), many_prod = matmul(x, x.t());
  set_num_threads(1);
  EXPECT_EQ(get_num_threads(), 1);
  Tensor one_rows = sum(x, {1}), one_all = sum(x), one_prod = matmul(x, x.t());
  set_num_threads(threads);
  EXPECT_EQ(get_num_threads(), threads);
  // Only the summation order may differ: 500-term sums of |x| <= 1 in double.
  expect_close(one_rows, many_rows, 0.0, 1e-12);
  expect_close(one_all, many_all, 0.0, 1e-10);
  expect_close(one_prod, many_prod, 0.0, 1e-12);
}

// ---- edge cases ---------------------------------------------------------------------------
TEST(OpsEdge, ZeroSizedTensors) {
  expect_tensor(zeros({0, 3}) + ones({3}), kFloat32, {0, 3}, {});
  expect_tensor(sum(zeros({0, 3}), {0}), kFloat32, {3}, {0, 0, 0});
  expect_tensor(sum(zeros({0})), kFloat32, {}, {0});
  expect_tensor(matmul(ones({2, 0}), ones({0, 3})), kFloat32, {2, 3}, {0, 0, 0, 0, 0, 0});
  expect_tensor(cat({zeros({0, 2}), ones({1, 2})}), kFloat32, {1, 2}, {1, 1});
}

TEST(OpsEdge, IntegerWrapAndDivisionByZero) {
  // uint8 wraps modulo 256, as in PyTorch and C.
  expect_tensor(from_vector<uint8_t>({200, 10}) + from_vector<uint8_t>({100, 5}), kUInt8, {2},
                {44, 15});
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  expect_tensor(i64({1, -1, 0}) / i64({0, 0, 0}), kFloat32, {3}, {kInf, -kInf, kNaN});
}

TEST(OpsEdge, SizeOneDims) {
  Tensor x = f64({1, 2, 3}, {1, 3, 1});
  expect_tensor(sum(x, {0}), kFloat64, {3, 1}, {1, 2, 3});
  expect_tensor(sum(x, {2}, true), kFloat64, {1, 3, 1}, {1, 2, 3});
  expect_tensor(strata::max(x, {0, 2}), kFloat64, {3}, {1, 2, 3});
  expect_tensor(argmax(x, 2), kInt64, {1, 3}, {0, 0, 0});
  expect_tensor(matmul(f64({2}, {1, 1}), f64({3}, {1, 1})), kFloat64, {1, 1}, {6});
}

// ---- non-contiguous elementwise inputs ----------------------------------------------------
TEST(OpsStrided, ElementwiseOnViews) {
  Tensor base = iota({3, 4});  // 0..11
  Tensor t = base.t();         // [4,3]: t[i][j] = 4 j + i
  Tensor c = iota({4, 3});     // c[i][j] = 3 i + j
  std::vector<double> sum, prod, e;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) {
      sum.push_back((4 * j + i) + (3 * i + j));
      prod.push_back((4 * j + i) * (3 * i + j));
      e.push_back(std::exp((4 * j + i) / 10.0));
    }
  expect_tensor(t + c, kFloat64, {4, 3}, sum);
  expect_tensor(t * c, kFloat64, {4, 3}, prod);
  expect_tensor(strata::exp(t / 10.0), kFloat64, {4, 3}, e);
  // Both operands strided.
  Tensor s = base.slice(1, 1, 4, 2);  // [3,2]: columns 1, 3
  expect_tensor(s - s.neg(), kFloat64, {3, 2}, {2, 6, 10, 14, 18, 22});
  expect_tensor(s * base.slice(1, 0, 4, 2), kFloat64, {3, 2}, {0, 6, 20, 42, 72, 110});
  // Expanded (stride-0) operand and transposed operand together.
  Tensor ex = f64({1, 2, 3, 4}, {4, 1}).expand({4, 3});
  std::vector<double> m;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) m.push_back((i + 1) * (4 * j + i));
  expect_tensor(ex * t, kFloat64, {4, 3}, m);
  expect_tensor(maximum(t, c), kFloat64, {4, 3}, [&] {
    std::vector<double> v;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) v.push_back(std::max(4 * j + i, 3 * i + j));
    return v;
  }());
  expect_tensor(where(t > 5.0, t, c), kFloat64, {4, 3}, [&] {
    std::vector<double> v;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) v.push_back(4 * j + i > 5 ? 4 * j + i : 3 * i + j);
    return v;
  }());
  expect_tensor(clamp(t, 2.0, 9.0), kFloat64, {4, 3}, [&] {
    std::vector<double> v;
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) v.push_back(std::clamp(4.0 * j + i, 2.0, 9.0));
    return v;
  }());
}

TEST(OpsStrided, ResultsAreContiguous) {
  Tensor t = iota({3, 4}).t();
  Tensor r = t * 2.0;
  EXPECT_TRUE(r.is_contiguous());
  EXPECT_EQ(r.shape(), (Shape{4, 3}));
  EXPECT_NE(r.storage().get(), t.storage().get());
}

}  // namespace
}  // namespace strata
