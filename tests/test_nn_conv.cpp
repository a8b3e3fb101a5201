// nn::functional convolution (conv1d, conv2d) and pooling (max/avg 1-D and 2-D, adaptive
// average, max unpooling) on the CPU: forward values and gradients against PyTorch fixtures
// (tests/data/gen_nn_conv.py) in float64 and float32; max pooling's values, indices and
// gradients on ties, NaN, -inf windows, ceil_mode, dilation, padding and unbatched inputs,
// and max_unpool1d/2d, exactly against tests/data/gen_nn_pool.py; float64 gradchecks (stride,
// padding, dilation, groups, bias, each pooling mode, ceil_mode, unpooling, uneven adaptive
// windows); the pooling layers; the batch-split kernel path against image-by-image runs; and
// the validation errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using test::distinct_values;
using test::expect_close;
using test::expect_error;
using test::expect_gradcheck;
using test::f64;
using test::Fixture;
using test::random_f32;
using test::random_f64;

// f32 results against f64 PyTorch values: sums of up to ~100 products of O(1) terms, with
// cancellation, round at a few 1e-7 absolute.
constexpr double kF32Rtol = 1e-4;
constexpr double kF32Atol = 1e-5;

Tensor leaf_copy(const Tensor& t, DType dtype) {
  Tensor copy = t.to(dtype).clone();
  copy.set_requires_grad(true);
  return copy;
}

// ---- convolution against PyTorch ----------------------------------------------------------

struct ConvCase {
  std::string name;
  int spatial;  // 1: conv1d, 2: conv2d
  F::Size2 stride, padding, dilation;
  int64_t groups;
};

// The parameters gen_nn_conv.py used for each case (conv1d cases use the width entries).
const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"conv2d_plain", 2, 1, 0, 1, 1},
      {"conv2d_strided", 2, {2, 1}, {1, 2}, {1, 2}, 1},
      {"conv2d_groups", 2, 1, 2, 2, 2},
      {"conv2d_1x1", 2, 1, 0, 1, 1},
      {"conv2d_depthwise", 2, 2, 1, 1, 3},
      {"conv2d_unbatched", 2, 1, 1, 1, 1},
      {"conv1d_strided", 1, 2, 1, 2, 1},
      {"conv1d_groups", 1, 1, 0, 1, 2},
      {"conv1d_unbatched", 1, 1, 2, 1, 1},
  };
  return cases;
}

Tensor run_conv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b) {
  if (c.spatial == 1) return F::conv1d(x, w, b, c.stride.w, c.padding.w, c.dilation.w, c.groups);
  return F::conv2d(x, w, b, c.stride, c.padding, c.dilation, c.groups);
}

void check_conv_against_fixture(DType dtype) {
  const Fixture f("nn_conv.txt");
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name + " " + dtype_name(dtype));
    const bool has_bias = f.has(c.name + "_b");
    Tensor x = leaf_copy(f[c.name + "_x"], dtype);
    Tensor w = leaf_copy(f[c.name + "_w"], dtype);
    Tensor b = has_bias ? leaf_copy(f[c.name + "_b"], dtype) : Tensor();
    Tensor y = run_conv(c, x, w, b);
    EXPECT_EQ(y.dtype(), dtype);
    y.backward(f[c.name + "_gy"].to(dtype));
    const double rtol = dtype == DType::Float32 ? kF32Rtol : -1;
    const double atol = dtype == DType::Float32 ? kF32Atol : -1;
    expect_close(y, f[c.name + "_y"], rtol, atol);
    expect_close(x.grad(), f[c.name + "_gx"], rtol, atol);
    expect_close(w.grad(), f[c.name + "_gw"], rtol, atol);
    if (has_bias) expect_close(b.grad(), f[c.name + "_gb"], rtol, atol);
  }
}

TEST(NnConv, MatchesPyTorchFloat64) { check_conv_against_fixture(DType::Float64); }
TEST(NnConv, MatchesPyTorchFloat32) { check_conv_against_fixture(DType::Float32); }

// The input of the first layer needs no gradient: only the weight's and bias's are computed.
TEST(NnConv, WeightGradientWithoutInputGradient) {
  const Fixture f("nn_conv.txt");
  const Tensor x = f["conv2d_plain_x"];
  Tensor w = leaf_copy(f["conv2d_plain_w"], DType::Float64);
  Tensor b = leaf_copy(f["conv2d_plain_b"], DType::Float64);
  F::conv2d(x, w, b).backward(f["conv2d_plain_gy"]);
  EXPECT_FALSE(x.grad().defined());
  expect_close(w.grad(), f["conv2d_plain_gw"]);
  expect_close(b.grad(), f["conv2d_plain_gb"]);
}

// A batch split over threads (each thread its own images and partial grad_w) gives what the
// images give one at a time. The cases are large enough for the CPU backend to split them
// (with two threads and OpenBLAS's OpenMP build), and cover the im2col, 1x1 and Winograd
// kernels.
TEST(NnConv, BatchMatchesImageByImage) {
  struct Case {
    const char* name;
    Shape x, w;
    F::Size2 stride, padding;
    int64_t groups;
  };
  const int threads = get_num_threads();
  set_num_threads(2);
  for (const Case& c : {Case{"3x3 strided, grouped", {4, 8, 24, 24}, {16, 4, 3, 3}, 2, 1, 2},
                        Case{"1x1 grouped", {4, 16, 32, 32}, {16, 8, 1, 1}, 1, 0, 2},
                        Case{"5x5 small images", {6, 6, 12, 12}, {16, 6, 5, 5}, 1, 0, 1},
                        Case{"3x3 winograd", {2, 16, 32, 32}, {16, 16, 3, 3}, 1, 1, 1}}) {
    SCOPED_TRACE(c.name);
    Tensor x = random_f64(c.x, -1, 1, 11, true);
    Tensor w = random_f64(c.w, -1, 1, 12, true);
    Tensor y = F::conv2d(x, w, Tensor(), c.stride, c.padding, 1, c.groups);
    const Tensor gy = random_f64(y.shape(), -1, 1, 13);
    y.backward(gy);
    Tensor gw_sum = zeros(w.shape(), kFloat64);
    for (int64_t i = 0; i < c.x[0]; ++i) {
      Tensor xi = x.detach().select(0, i).unsqueeze(0).clone();
      xi.set_requires_grad(true);
      Tensor wi = w.detach().clone();
      wi.set_requires_grad(true);
      Tensor yi = F::conv2d(xi, wi, Tensor(), c.stride, c.padding, 1, c.groups);
      yi.backward(gy.select(0, i).unsqueeze(0));
      expect_close(y.detach().select(0, i).unsqueeze(0), yi);
      expect_close(x.grad().select(0, i).unsqueeze(0), xi.grad());
      gw_sum = gw_sum + wi.grad();
    }
    expect_close(w.grad(), gw_sum);
  }
  set_num_threads(threads);
}

// 3x3 stride-1 convolutions with 16 or more channels run a different kernel (Winograd
// F(2x2, 3x3) on the CPU); they must equal the same filter zero-padded to 5x5 with one more
// padding, which takes the general path (checked against PyTorch above). Odd output sizes
// leave partial tiles at the edges.
TEST(NnConv, ThreeByThreeManyChannelsMatchesGeneralPath) {
  struct Case {
    Shape x;
    int64_t k;
    F::Size2 padding;
  };
  for (const Case& c : {Case{{3, 16, 7, 9}, 16, {1, 1}}, Case{{2, 24, 5, 6}, 20, {2, 0}},
                        Case{{1, 16, 4, 3}, 32, {0, 2}}}) {
    SCOPED_TRACE(shape_str(c.x) + " k=" + std::to_string(c.k));
    const int64_t channels = c.x[1];
    Tensor x = random_f64(c.x, -1, 1, 21, true);
    Tensor w = random_f64({c.k, channels, 3, 3}, -1, 1, 22, true);
    Tensor b = random_f64({c.k}, -1, 1, 23, true);
    Tensor w5 = zeros({c.k, channels, 5, 5}, kFloat64);
    w5.slice(2, 1, 4).slice(3, 1, 4).copy_(w.detach());
    w5.set_requires_grad(true);
    Tensor x5 = x.detach().clone();
    x5.set_requires_grad(true);
    const F::Size2 padding5(c.padding.h + 1, c.padding.w + 1);

    Tensor y = F::conv2d(x, w, b, 1, c.padding);
    Tensor y5 = F::conv2d(x5, w5, b.detach(), 1, padding5);
    expect_close(y, y5);
    const Tensor gy = random_f64(y.shape(), -1, 1, 24);
    y.backward(gy);
    y5.backward(gy);
    expect_close(x.grad(), x5.grad());
    expect_close(w.grad(), w5.grad().slice(2, 1, 4).slice(3, 1, 4));

    // float32: the transforms add a few roundings; the f32 tolerance of the fixtures holds.
    Tensor x32 = leaf_copy(x.detach(), DType::Float32);
    Tensor w32 = leaf_copy(w.detach(), DType::Float32);
    Tensor y32 = F::conv2d(x32, w32, b.detach().to(DType::Float32), 1, c.padding);
    y32.backward(gy.to(DType::Float32));
    expect_close(y32, y5, kF32Rtol, kF32Atol);
    expect_close(x32.grad(), x5.grad(), kF32Rtol, kF32Atol);
  }
}

// ---- convolution gradchecks ---------------------------------------------------------------

TEST(NnConvGradcheck, Conv2dStridePaddingDilationGroupsBias) {
  const Tensor x = random_f64({2, 4, 5, 5}, -1, 1, 1, true);
  const Tensor w = random_f64({6, 2, 3, 3}, -1, 1, 2, true);
  const Tensor b = random_f64({6}, -1, 1, 3, true);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::conv2d(in[0], in[1], in[2], {2, 1}, {1, 2}, {1, 2}, 2);
      },
      {x, w, b});
}

TEST(NnConvGradcheck, Conv2dPlainWithoutBias) {
  const Tensor x = random_f64({2, 3, 5, 4}, -1, 1, 4, true);
  const Tensor w = random_f64({4, 3, 2, 3}, -1, 1, 5, true);
  expect_gradcheck([](const std::vector<Tensor>& in) { return F::conv2d(in[0], in[1]); },
                   {x, w});
}

TEST(NnConvGradcheck, Conv2dOneByOne) {
  const Tensor x = random_f64({2, 3, 4, 4}, -1, 1, 6, true);
  const Tensor w = random_f64({5, 3, 1, 1}, -1, 1, 7, true);
  const Tensor b = random_f64({5}, -1, 1, 8, true);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::conv2d(in[0], in[1], in[2]); }, {x, w, b});
}

TEST(NnConvGradcheck, Conv2dUnbatchedNonContiguous) {
  // x is a transposed view: the op copies it for the kernel and the gradient keeps its shape.
  const Tensor base = random_f64({3, 5, 4}, -1, 1, 9, true);
  const Tensor w = random_f64({2, 3, 3, 3}, -1, 1, 10, true);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::conv2d(in[0].transpose(1, 2), in[1], Tensor(), 1, 1);
      },
      {base, w});
}

TEST(NnConvGradcheck, Conv1dStridePaddingDilationGroupsBias) {
  const Tensor x = random_f64({2, 4, 9}, -1, 1, 11, true);
  const Tensor w = random_f64({6, 2, 3}, -1, 1, 12, true);
  const Tensor b = random_f64({6}, -1, 1, 13, true);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::conv1d(in[0], in[1], in[2], 2, 1, 2, 2); },
      {x, w, b});
}

TEST(NnConvGradcheck, Conv1dUnbatchedWithoutBias) {
  const Tensor x = random_f64({3, 7}, -1, 1, 14, true);
  const Tensor w = random_f64({2, 3, 2}, -1, 1, 15, true);
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::conv1d(in[0], in[1], Tensor(), 1, 1); },
      {x, w});
}

// ---- pooling against PyTorch --------------------------------------------------------------

struct PoolCase {
  std::string name;
  std::function<Tensor(const Tensor&)> fn;
};

const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"max2d_k3s2p1", [](const Tensor& x) { return F::max_pool2d(x, 3, F::Size2(2), 1); }},
      {"max2d_k2", [](const Tensor& x) { return F::max_pool2d(x, 2); }},
      {"max2d_rect",
       [](const Tensor& x) { return F::max_pool2d(x, {3, 2}, F::Size2(1, 2), {1, 0}); }},
      {"max2d_unbatched", [](const Tensor& x) { return F::max_pool2d(x, 2, F::Size2(1)); }},
      {"avg2d_incl", [](const Tensor& x) { return F::avg_pool2d(x, 3, F::Size2(2), 1, true); }},
      {"avg2d_excl", [](const Tensor& x) { return F::avg_pool2d(x, 3, F::Size2(2), 1, false); }},
      {"avg2d_rect",
       [](const Tensor& x) { return F::avg_pool2d(x, {2, 3}, F::Size2(2, 1), {1, 1}, false); }},
      {"max1d", [](const Tensor& x) { return F::max_pool1d(x, 3, 2, 1); }},
      {"max1d_unbatched", [](const Tensor& x) { return F::max_pool1d(x, 2); }},
      {"avg1d_incl", [](const Tensor& x) { return F::avg_pool1d(x, 3, 2, 1, true); }},
      {"avg1d_excl", [](const Tensor& x) { return F::avg_pool1d(x, 3, 2, 1, false); }},
      {"adaptive_uneven", [](const Tensor& x) { return F::adaptive_avg_pool2d(x, {3, 4}); }},
      {"adaptive_larger", [](const Tensor& x) { return F::adaptive_avg_pool2d(x, {4, 7}); }},
      {"adaptive_even", [](const Tensor& x) { return F::adaptive_avg_pool2d(x, {2, 3}); }},
      {"adaptive_global", [](const Tensor& x) { return F::adaptive_avg_pool2d(x, 1); }},
      {"adaptive_unbatched", [](const Tensor& x) { return F::adaptive_avg_pool2d(x, {2, 3}); }},
  };
  return cases;
}

void check_pool_against_fixture(DType dtype) {
  const Fixture f("nn_conv.txt");
  for (const PoolCase& c : pool_cases()) {
    SCOPED_TRACE(c.name + " " + dtype_name(dtype));
    Tensor x = leaf_copy(f[c.name + "_x"], dtype);
    Tensor y = c.fn(x);
    EXPECT_EQ(y.dtype(), dtype);
    y.backward(f[c.name + "_gy"].to(dtype));
    // f32: averages of a handful of O(1) values; the default f32 tolerance holds.
    expect_close(y, f[c.name + "_y"]);
    expect_close(x.grad(), f[c.name + "_gx"]);
  }
}

TEST(NnPool, MatchesPyTorchFloat64) { check_pool_against_fixture(DType::Float64); }
TEST(NnPool, MatchesPyTorchFloat32) { check_pool_against_fixture(DType::Float32); }

// Overlapping windows that share their maximum each send their gradient to it, and a tie
// within one window goes to the first maximum (PyTorch's rule).
TEST(NnPool, MaxGradientGoesToFirstMaximum) {
  Tensor x = f64({1, 5, 5, 0, 2, 3, 4, 1, 1, 0}, {1, 1, 2, 5}, true);
  Tensor y = F::max_pool2d(x, 2, F::Size2(1));
  test::expect_values(y, {1, 1, 1, 4}, {5, 5, 5, 2});
  y.backward(f64({1, 10, 100, 1000}, {1, 1, 1, 4}));
  test::expect_values(x.grad(), {1, 1, 2, 5}, {0, 11, 100, 0, 1000, 0, 0, 0, 0, 0});
}

// 2x2 windows at stride 2 (a path of their own on the CPU): a tie goes to the first maximum,
// a NaN wins its window and takes the gradient, and a last odd row and column are left out.
TEST(NnPool, MaxPool2x2TiesNaNAndOddSizes) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (DType dtype : {DType::Float64, DType::Float32}) {
    Tensor x = f64({1, 3, 3, 0, 7,  //
                    3, 2, nan, 5, 9,  //
                    4, 4, 4, 4, 4},
                   {1, 1, 3, 5}).to(dtype);
    x.set_requires_grad(true);
    Tensor y = F::max_pool2d(x, 2);
    ASSERT_EQ(y.shape(), Shape({1, 1, 1, 2}));
    const std::vector<double> values = y.to(DType::Float64).to_vector<double>();
    EXPECT_EQ(values[0], 3.0);
    EXPECT_TRUE(std::isnan(values[1]));
    y.backward(f64({10, 100}, {1, 1, 1, 2}).to(dtype));
    EXPECT_EQ(x.grad().to(DType::Float64).to_vector<double>(),
              (std::vector<double>{0, 10, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0}))
        << dtype_name(dtype);
  }
}

// ---- max pooling with indices, and max unpooling, against PyTorch --------------------------
// tests/data/gen_nn_pool.py: inputs and upstream gradients are multiples of 1/8, so values,
// indices and gradients are exact in float32 as in float64 (tolerance 0).

using PoolWithIndices = std::function<std::pair<Tensor, Tensor>(const Tensor&)>;

struct MaxPoolCase {
  std::string name;
  PoolWithIndices fn;
};

// The parameters gen_nn_pool.py used for each case.
const std::vector<MaxPoolCase>& max_pool_cases() {
  static const std::vector<MaxPoolCase> cases = {
      {"max2d_ties_k3s2p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(2), 1); }},
      {"max2d_ties_k2s1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, F::Size2(1)); }},
      {"max2d_ties_2x2", [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2); }},
      {"max2d_nan_k3s1p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(1), 1); }},
      {"max2d_nan_2x2", [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2); }},
      {"max2d_nan_k2s2p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, F::Size2(2), 1); }},
      {"max2d_neginf_k3s2p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(2), 1); }},
      {"max2d_neginf_2x2", [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2); }},
      {"max2d_neginf_k2s1p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, F::Size2(1), 1); }},
      {"max2d_ceil_k3s2",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(2), 0, 1, true); }},
      {"max2d_ceil_2x2_odd",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, std::nullopt, 0, 1, true); }},
      {"max2d_ceil_k3s2p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(2), 1, 1, true); }},
      {"max2d_ceil_k4s2_small",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 4, F::Size2(2), 0, 1, true); }},
      {"max2d_ceil_ties",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(2), 1, 1, true); }},
      {"max2d_dil2_k3s1p1",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 3, F::Size2(1), 1, 2); }},
      {"max2d_dil_rect_ceil",
       [](const Tensor& x) {
         return F::max_pool2d_with_indices(x, {3, 2}, F::Size2(2, 1), {1, 1}, {2, 3}, true);
       }},
      {"max2d_dil_ties",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, F::Size2(1), 1, 2); }},
      {"max2d_rect",
       [](const Tensor& x) {
         return F::max_pool2d_with_indices(x, {3, 2}, F::Size2(1, 2), {1, 0});
       }},
      {"max2d_k2s3", [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, F::Size2(3)); }},
      {"max2d_unbatched",
       [](const Tensor& x) { return F::max_pool2d_with_indices(x, 2, F::Size2(1), 1); }},
      {"max1d_ties_nan", [](const Tensor& x) { return F::max_pool1d_with_indices(x, 3, 2, 1); }},
      {"max1d_dil_ceil",
       [](const Tensor& x) { return F::max_pool1d_with_indices(x, 3, 2, 1, 2, true); }},
      {"max1d_unbatched", [](const Tensor& x) { return F::max_pool1d_with_indices(x, 2); }},
  };
  return cases;
}

void check_max_pool_against_fixture(DType dtype) {
  const Fixture f("nn_pool.txt");
  for (const MaxPoolCase& c : max_pool_cases()) {
    SCOPED_TRACE(c.name + " " + dtype_name(dtype));
    Tensor x = leaf_copy(f[c.name + "_x"], dtype);
    auto [y, indices] = c.fn(x);
    EXPECT_EQ(y.dtype(), dtype);
    EXPECT_EQ(indices.dtype(), DType::Int64);
    EXPECT_FALSE(indices.requires_grad());
    expect_close(y, f[c.name + "_out"], 0, 0);
    expect_close(indices, f[c.name + "_idx"], 0, 0);
    y.backward(f[c.name + "_g"].to(dtype));
    expect_close(x.grad(), f[c.name + "_grad_x"], 0, 0);
  }
}

TEST(NnMaxPool, MatchesPyTorchFloat64) { check_max_pool_against_fixture(DType::Float64); }
TEST(NnMaxPool, MatchesPyTorchFloat32) { check_max_pool_against_fixture(DType::Float32); }

// max_pool1d/2d are the values of the _with_indices forms, gradient included.
TEST(NnMaxPool, ValuesOnlyFormsMatch) {
  const Fixture f("nn_pool.txt");
  Tensor x2 = leaf_copy(f["max2d_dil_rect_ceil_x"], DType::Float64);
  Tensor y2 = F::max_pool2d(x2, {3, 2}, F::Size2(2, 1), {1, 1}, {2, 3}, true);
  expect_close(y2, f["max2d_dil_rect_ceil_out"], 0, 0);
  y2.backward(f["max2d_dil_rect_ceil_g"]);
  expect_close(x2.grad(), f["max2d_dil_rect_ceil_grad_x"], 0, 0);
  Tensor x1 = leaf_copy(f["max1d_ties_nan_x"], DType::Float32);
  Tensor y1 = F::max_pool1d(x1, 3, 2, 1);
  expect_close(y1, f["max1d_ties_nan_out"], 0, 0);
  y1.backward(f["max1d_ties_nan_g"].to(DType::Float32));
  expect_close(x1.grad(), f["max1d_ties_nan_grad_x"], 0, 0);
}

// Every kernel path (2x2, row-vectorized interior windows, border windows) against a naive
// loop written from PyTorch's kernel, over many small configurations: values full of ties,
// with NaN and -inf sprinkled in; values and indices must match exactly, and the gradient
// must be the upstream one scattered through those indices.
TEST(NnMaxPool, MatchesNaiveScanOnRandomConfigs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  std::mt19937 engine(77);
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(engine);
  };
  int checked = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const int64_t kh = pick(1, 4), kw = pick(1, 4), sh = pick(1, 3), sw = pick(1, 3);
    const int64_t ph = pick(0, kh / 2), pw = pick(0, kw / 2), dh = pick(1, 3), dw = pick(1, 3);
    const bool ceil_mode = pick(0, 1) == 1;
    const int64_t h = pick(1, 9), w = pick(1, 40);
    // Sizes as the op computes them; skip configurations it refuses.
    std::pair<Tensor, Tensor> result;
    std::vector<double> values(static_cast<size_t>(2 * h * w));
    for (double& v : values) {
      const int64_t r = pick(0, 19);
      v = r == 0 ? nan : r == 1 ? -inf : static_cast<double>(r % 4);
    }
    for (DType dtype : {DType::Float64, DType::Float32}) {
      Tensor x = f64(values, {1, 2, h, w}).to(dtype);
      x.set_requires_grad(true);
      try {
        result = F::max_pool2d_with_indices(x, {kh, kw}, F::Size2(sh, sw), {ph, pw}, {dh, dw},
                                            ceil_mode);
      } catch (const Error&) {
        continue;
      }
      const int64_t p = result.first.size(2), q = result.first.size(3);
      SCOPED_TRACE("x [1,2," + std::to_string(h) + "," + std::to_string(w) + "] " +
                   dtype_name(dtype) + " kernel " + std::to_string(kh) + "x" +
                   std::to_string(kw) + " stride " + std::to_string(sh) + "x" +
                   std::to_string(sw) + " padding " + std::to_string(ph) + "x" +
                   std::to_string(pw) + " dilation " + std::to_string(dh) + "x" +
                   std::to_string(dw) + (ceil_mode ? " ceil" : ""));
      std::vector<double> want_values, want_grad(values.size(), 0.0);
      std::vector<int64_t> want_indices;
      for (int64_t c = 0; c < 2; ++c) {
        for (int64_t oh = 0; oh < p; ++oh) {
          for (int64_t ow = 0; ow < q; ++ow) {
            int64_t h0 = oh * sh - ph, w0 = ow * sw - pw;
            const int64_t h1 = std::min(h0 + (kh - 1) * dh + 1, h);
            const int64_t w1 = std::min(w0 + (kw - 1) * dw + 1, w);
            while (h0 < 0) h0 += dh;
            while (w0 < 0) w0 += dw;
            double best = -inf;
            int64_t best_index = h0 * w + w0;
            for (int64_t ih = h0; ih < h1; ih += dh) {
              for (int64_t iw = w0; iw < w1; iw += dw) {
                const double v = values[static_cast<size_t>(c * h * w + ih * w + iw)];
                if (v > best || std::isnan(v)) {
                  best = v;
                  best_index = ih * w + iw;
                }
              }
            }
            want_values.push_back(best);
            want_indices.push_back(best_index);
            // Upstream gradient k + 1 for the k-th output: distinct, exact in float32.
            want_grad[static_cast<size_t>(c * h * w + best_index)] +=
                static_cast<double>(want_indices.size());
          }
        }
      }
      test::expect_values(result.first, {1, 2, p, q}, want_values, 0, 0);
      const std::vector<double> want_indices_f(want_indices.begin(), want_indices.end());
      test::expect_values(result.second, {1, 2, p, q}, want_indices_f, 0, 0);
      const Tensor upstream =
          arange(1, static_cast<double>(1 + 2 * p * q), 1, dtype).reshape({1, 2, p, q});
      result.first.backward(upstream);
      test::expect_values(x.grad(), {1, 2, h, w}, want_grad, 0, 0);
      // Without indices asked for, the tape keeps each maximum's tap number (uint8) instead of
      // its position: the same values and gradient.
      Tensor x2 = x.detach().clone();
      x2.set_requires_grad(true);
      const Tensor y2 =
          F::max_pool2d(x2, {kh, kw}, F::Size2(sh, sw), {ph, pw}, {dh, dw}, ceil_mode);
      test::expect_values(y2, {1, 2, p, q}, want_values, 0, 0);
      y2.backward(upstream);
      test::expect_values(x2.grad(), {1, 2, h, w}, want_grad, 0, 0);
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);  // most configurations are valid
}

// Output sizes, as PyTorch's pooling_output_shape: ceil_mode adds a window over the edge
// unless it would start in the right padding, and lets a kernel larger than the input through.
TEST(NnMaxPool, CeilModeOutputSizes) {
  EXPECT_EQ(F::max_pool2d(zeros({1, 1, 5, 7}), 2, std::nullopt, 0, 1, true).shape(),
            Shape({1, 1, 3, 4}));
  EXPECT_EQ(F::max_pool2d(zeros({1, 1, 5, 7}), 2).shape(), Shape({1, 1, 2, 3}));
  // (6 + 2 - 3 + 1) / 2 + 1 = 4, and window 3 starts at 5 < 6 + 1: kept.
  EXPECT_EQ(F::max_pool2d(zeros({1, 1, 6, 6}), 3, F::Size2(2), 1, 1, true).shape(),
            Shape({1, 1, 4, 4}));
  // ceil((5 + 2 - 2) / 2) + 1 = 4, but window 3 would start at 6 - 1 = 5 >= 5 + 1 - 1: dropped.
  EXPECT_EQ(F::max_pool1d(zeros({1, 1, 5}), 2, 2, 1, 1, true).shape(), Shape({1, 1, 3}));
  EXPECT_EQ(F::max_pool2d(zeros({1, 1, 3, 3}), 4, F::Size2(2), 0, 1, true).shape(),
            Shape({1, 1, 1, 1}));
  EXPECT_EQ(F::max_pool2d(zeros({2, 9, 8}), 3, F::Size2(1), 1, 2).shape(), Shape({2, 7, 6}));
}

// Windows that overlap send each of their gradients to their own maximum; a repeated maximum
// collects them all (the saved indices, not x, route the backward).
TEST(NnMaxPool, BackwardUsesTheSavedIndices) {
  Tensor x = f64({1, 5, 5, 0, 2, 3, 4, 1, 1, 0}, {1, 1, 2, 5}, true);
  auto [y, indices] = F::max_pool2d_with_indices(x, 2, F::Size2(1));
  test::expect_values(indices, {1, 1, 1, 4}, {1, 1, 2, 4});
  {
    NoGradGuard no_grad;
    x.detach().zero_();  // changing x after the forward must not move the gradient
  }
  y.backward(f64({1, 10, 100, 1000}, {1, 1, 1, 4}));
  test::expect_values(x.grad(), {1, 1, 2, 5}, {0, 11, 100, 0, 1000, 0, 0, 0, 0, 0});
}

struct MaxUnpoolCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> fn;
};

const std::vector<MaxUnpoolCase>& max_unpool_cases() {
  static const std::vector<MaxUnpoolCase> cases = {
      {"unpool2d_k2", [](const Tensor& x, const Tensor& i) { return F::max_unpool2d(x, i, 2); }},
      {"unpool2d_k2_size",
       [](const Tensor& x, const Tensor& i) {
         return F::max_unpool2d(x, i, 2, std::nullopt, 0, F::Size2(7, 9));
       }},
      {"unpool2d_overlap",
       [](const Tensor& x, const Tensor& i) { return F::max_unpool2d(x, i, 3, F::Size2(1), 1); }},
      {"unpool2d_ceil",
       [](const Tensor& x, const Tensor& i) {
         return F::max_unpool2d(x, i, 3, F::Size2(2), 0, F::Size2(7, 7));
       }},
      {"unpool2d_unbatched",
       [](const Tensor& x, const Tensor& i) { return F::max_unpool2d(x, i, 2); }},
      {"unpool1d_k2", [](const Tensor& x, const Tensor& i) { return F::max_unpool1d(x, i, 2); }},
      {"unpool1d_k2_size",
       [](const Tensor& x, const Tensor& i) {
         return F::max_unpool1d(x, i, 2, std::nullopt, 0, 11);
       }},
      {"unpool1d_unbatched",
       [](const Tensor& x, const Tensor& i) { return F::max_unpool1d(x, i, 3, 2, 1); }},
  };
  return cases;
}

// unpool2d_overlap has repeated indices (overlapping windows sharing a maximum): the value
// lands once, and each input gets the gradient of the position it went to, as in PyTorch.
void check_max_unpool_against_fixture(DType dtype) {
  const Fixture f("nn_pool.txt");
  for (const MaxUnpoolCase& c : max_unpool_cases()) {
    SCOPED_TRACE(c.name + " " + dtype_name(dtype));
    Tensor x = leaf_copy(f[c.name + "_x"], dtype);
    Tensor y = c.fn(x, f[c.name + "_idx"]);
    EXPECT_EQ(y.dtype(), dtype);
    expect_close(y, f[c.name + "_out"], 0, 0);
    y.backward(f[c.name + "_g"].to(dtype));
    expect_close(x.grad(), f[c.name + "_grad_x"], 0, 0);
  }
}

TEST(NnMaxUnpool, MatchesPyTorchFloat64) { check_max_unpool_against_fixture(DType::Float64); }
TEST(NnMaxUnpool, MatchesPyTorchFloat32) { check_max_unpool_against_fixture(DType::Float32); }

// Repeated indices in a plane (overlapping windows) carrying different values: PyTorch leaves
// the result undefined (its CPU keeps the last, its CUDA any one); Strata writes their mean,
// and each input still gets the gradient of the position it went to.
TEST(NnMaxUnpool, RepeatedIndicesGetTheMean) {
  Tensor x = f64({1, 2, 4, 8}, {1, 1, 1, 4}, true);
  const Tensor indices = test::i64({3, 3, 0, 3}, {1, 1, 1, 4});
  Tensor y = F::max_unpool1d(x.squeeze(2), indices.squeeze(2), 2);  // output length 8
  test::expect_values(y, {1, 1, 8}, {4, 0, 0, 11.0 / 3, 0, 0, 0, 0});
  y.backward(f64({10, 20, 30, 40, 50, 60, 70, 80}, {1, 1, 8}));
  test::expect_values(x.grad(), {1, 1, 1, 4}, {40, 40, 10, 40});
}

// Pool then unpool puts each maximum back where it was and zeros elsewhere.
TEST(NnMaxUnpool, UndoesMaxPool) {
  const Tensor x = random_f64({2, 3, 6, 8}, -1, 1, 21);
  auto [pooled, indices] = F::max_pool2d_with_indices(x, 2);
  const Tensor restored = F::max_unpool2d(pooled, indices, 2);
  ASSERT_EQ(restored.shape(), x.shape());
  const Tensor kept = ne(restored, 0.0);
  expect_close(where(kept, x, zeros_like(x)), restored, 0, 0);
  EXPECT_EQ(sum(kept.to(kFloat64)).item<double>(), 2.0 * 3 * 3 * 4);
}

// ---- pooling layers -----------------------------------------------------------------------

TEST(NnPoolLayers, MaxPoolOptionsAndIndices) {
  const Tensor x = random_f64({2, 3, 9, 8}, -1, 1, 31);
  nn::MaxPool2d pool({3, 2}, F::Size2(2, 1), {1, 1}, {2, 1}, true);
  auto [values, indices] = pool.forward_with_indices(x);
  auto [expected_values, expected_indices] =
      F::max_pool2d_with_indices(x, {3, 2}, F::Size2(2, 1), {1, 1}, {2, 1}, true);
  expect_close(values, expected_values, 0, 0);
  expect_close(indices, expected_indices, 0, 0);
  expect_close(pool(x), expected_values, 0, 0);
  EXPECT_EQ(pool.str(),
            "MaxPool2d(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 1), "
            "ceil_mode=true)");
  EXPECT_EQ(nn::MaxPool2d(2).str(), "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");

  nn::MaxPool1d pool1d(3, 2, 1, 2, true);
  const Tensor seq = random_f64({2, 3, 12}, -1, 1, 32);
  expect_close(pool1d.forward_with_indices(seq).second,
               F::max_pool1d_with_indices(seq, 3, 2, 1, 2, true).second, 0, 0);
  EXPECT_EQ(pool1d.str(),
            "MaxPool1d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=true)");
}

TEST(NnPoolLayers, MaxUnpool) {
  const Tensor x = random_f64({2, 3, 7, 9}, -1, 1, 33);
  nn::MaxPool2d pool(2);
  nn::MaxUnpool2d unpool(2);
  auto [pooled, indices] = pool.forward_with_indices(x);
  const Tensor restored = unpool.forward(pooled, indices, F::Size2(7, 9));
  expect_close(restored, F::max_unpool2d(pooled, indices, 2, std::nullopt, 0, F::Size2(7, 9)),
               0, 0);
  // Without output_size: (3 - 1) * 2 + 2 = 6 rows and 8 columns, the size of an even input.
  const Tensor even = x.narrow(2, 0, 6).narrow(3, 0, 8);
  auto [pooled_even, indices_even] = pool.forward_with_indices(even);
  expect_close(unpool.forward(pooled_even, indices_even),
               F::max_unpool2d(pooled_even, indices_even, 2), 0, 0);
  EXPECT_EQ(unpool.forward(pooled_even, indices_even).shape(), Shape({2, 3, 6, 8}));
  EXPECT_EQ(unpool.str(), "MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
  // Unpooling needs the indices: the one-argument forward says so.
  expect_error([&] { unpool(pooled); }, {"MaxUnpool2d", "forward"});

  nn::MaxPool1d pool1d(2);
  nn::MaxUnpool1d unpool1d(2);
  const Tensor seq = random_f64({2, 3, 11}, -1, 1, 34);
  auto [pooled1d, indices1d] = pool1d.forward_with_indices(seq);
  EXPECT_EQ(unpool1d.forward(pooled1d, indices1d, 11).shape(), Shape({2, 3, 11}));
  EXPECT_EQ(unpool1d.str(), "MaxUnpool1d(kernel_size=2, stride=2, padding=0)");
}

// ---- pooling gradchecks -------------------------------------------------------------------

Tensor distinct_leaf(const Shape& shape, uint32_t seed) {
  return f64(distinct_values(static_cast<size_t>(numel_of(shape)), 0.3, seed), shape, true);
}

TEST(NnPoolGradcheck, MaxPool2dPadded) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::max_pool2d(in[0], 3, F::Size2(2), 1); },
      {distinct_leaf({2, 2, 5, 6}, 1)});
}

TEST(NnPoolGradcheck, MaxPool2dOverlappingRect) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::max_pool2d(in[0], {2, 3}, F::Size2(1, 2), {1, 1});
      },
      {distinct_leaf({1, 2, 4, 5}, 2)});
}

// Windows that tile the input exactly, as the usual 2x2 pooling's.
TEST(NnPoolGradcheck, Pool2dTiled) {
  expect_gradcheck([](const std::vector<Tensor>& in) { return F::max_pool2d(in[0], 2); },
                   {distinct_leaf({2, 2, 4, 6}, 11)});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::avg_pool2d(in[0], {2, 3}, std::nullopt, 0); },
      {random_f64({2, 2, 4, 6}, -1, 1, 12, true)});
}

TEST(NnPoolGradcheck, AvgPool2dIncludePad) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::avg_pool2d(in[0], 3, F::Size2(2), 1, true);
      },
      {random_f64({2, 2, 5, 6}, -1, 1, 3, true)});
}

TEST(NnPoolGradcheck, AvgPool2dExcludePad) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::avg_pool2d(in[0], {3, 2}, F::Size2(1, 2), {1, 1}, false);
      },
      {random_f64({2, 2, 5, 6}, -1, 1, 4, true)});
}

TEST(NnPoolGradcheck, Pool1d) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::max_pool1d(in[0], 3, 2, 1); },
      {distinct_leaf({2, 3, 9}, 5)});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::avg_pool1d(in[0], 3, 2, 1, true); },
      {random_f64({2, 3, 9}, -1, 1, 6, true)});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::avg_pool1d(in[0], 3, 2, 1, false); },
      {random_f64({3, 9}, -1, 1, 7, true)});
}

TEST(NnPoolGradcheck, MaxPoolDilationCeilMode) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::max_pool2d(in[0], 3, F::Size2(2), 1, 2, true);
      },
      {distinct_leaf({1, 2, 8, 9}, 13)});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        return F::max_pool2d(in[0], {2, 3}, F::Size2(3, 2), {1, 1}, {3, 1}, true);
      },
      {distinct_leaf({2, 1, 9, 7}, 14)});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::max_pool1d(in[0], 3, 2, 1, 2, true); },
      {distinct_leaf({2, 2, 10}, 15)});
}

// Indices from pooling distinct values with windows that do not overlap (no repeats).
TEST(NnPoolGradcheck, MaxUnpool) {
  const Tensor source = f64(distinct_values(2 * 2 * 7 * 8, 0.3, 16), {2, 2, 7, 8});
  const Tensor indices = F::max_pool2d_with_indices(source, 3, F::Size2(3), 1, 1, true).second;
  expect_gradcheck(
      [indices](const std::vector<Tensor>& in) {
        return F::max_unpool2d(in[0], indices, 3, F::Size2(3), 1, F::Size2(7, 8));
      },
      {random_f64(indices.shape(), -1, 1, 17, true)});
  const Tensor source1d = f64(distinct_values(3 * 9, 0.3, 18), {3, 9});
  const Tensor indices1d = F::max_pool1d_with_indices(source1d, 2).second;
  expect_gradcheck(
      [indices1d](const std::vector<Tensor>& in) {
        return F::max_unpool1d(in[0], indices1d, 2, std::nullopt, 0, 9);
      },
      {random_f64(indices1d.shape(), -1, 1, 19, true)});
  // Through both: pooling chooses the indices, unpooling puts the maxima back.
  expect_gradcheck(
      [](const std::vector<Tensor>& in) {
        auto [pooled, where_from] = F::max_pool2d_with_indices(in[0], 2, F::Size2(2), 1);
        return F::max_unpool2d(pooled * pooled, where_from, 2, F::Size2(2), 1);
      },
      {distinct_leaf({1, 2, 6, 6}, 20)});
}

TEST(NnPoolGradcheck, AdaptiveAvgPool2dUneven) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::adaptive_avg_pool2d(in[0], {3, 4}); },
      {random_f64({2, 2, 7, 9}, -1, 1, 8, true)});
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::adaptive_avg_pool2d(in[0], {4, 6}); },
      {random_f64({1, 2, 3, 5}, -1, 1, 9, true)});
}

TEST(NnPoolGradcheck, AdaptiveAvgPool2dEven) {
  expect_gradcheck(
      [](const std::vector<Tensor>& in) { return F::adaptive_avg_pool2d(in[0], {2, 3}); },
      {random_f64({2, 5, 6, 9}, -1, 1, 10, true)});
}

// ---- errors -------------------------------------------------------------------------------

TEST(NnConvErrors, ChannelMismatchNamesShapes) {
  const Tensor x = zeros({64, 3, 32, 32});
  const Tensor w = zeros({6, 1, 5, 5});
  expect_error([&] { F::conv2d(x, w); },
               {"conv2d: input has 3 channels but weight expects 1",
                "input [64,3,32,32] f32 cpu", "weight [6,1,5,5] f32 cpu"});
  expect_error([&] { F::conv2d(zeros({2, 4, 5, 5}), zeros({6, 1, 3, 3}), Tensor(), 1, 0, 1, 2); },
               {"conv2d: input has 4 channels but weight expects 2", "groups", "[2,4,5,5]",
                "[6,1,3,3]"});
  expect_error([&] { F::conv1d(zeros({2, 3, 10}), zeros({4, 2, 3})); },
               {"conv1d: input has 3 channels but weight expects 2", "[2,3,10]", "[4,2,3]"});
}

TEST(NnConvErrors, Ranks) {
  expect_error([] { F::conv2d(zeros({3, 4}), zeros({2, 3, 1, 1})); },
               {"conv2d", "3-D (unbatched) or 4-D", "input [3,4] f32 cpu"});
  expect_error([] { F::conv2d(zeros({1, 3, 4, 4}), zeros({2, 3, 3})); },
               {"conv2d", "4-D weight", "weight [2,3,3] f32 cpu"});
  expect_error([] { F::conv1d(zeros({1, 3, 4, 4}), zeros({2, 3, 3})); },
               {"conv1d", "2-D (unbatched) or 3-D", "input [1,3,4,4]"});
  expect_error([] { F::conv1d(zeros({1, 3, 8}), zeros({2, 3, 3, 3})); },
               {"conv1d", "3-D weight", "weight [2,3,3,3]"});
}

TEST(NnConvErrors, Groups) {
  expect_error([] { F::conv2d(zeros({1, 4, 5, 5}), zeros({6, 2, 3, 3}), Tensor(), 1, 0, 1, 3); },
               {"conv2d", "groups 3 does not divide", "[1,4,5,5]", "[6,2,3,3]"});
  expect_error([] { F::conv2d(zeros({1, 4, 5, 5}), zeros({5, 2, 3, 3}), Tensor(), 1, 0, 1, 2); },
               {"conv2d", "groups 2 does not divide the weight's 5 output channels"});
  expect_error([] { F::conv2d(zeros({1, 4, 5, 5}), zeros({4, 4, 3, 3}), Tensor(), 1, 0, 1, 0); },
               {"conv2d", "groups must be >= 1"});
}

TEST(NnConvErrors, Bias) {
  expect_error([] { F::conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({3})); },
               {"conv2d", "bias of shape [4]", "bias [3] f32 cpu"});
  expect_error([] { F::conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({1, 4})); },
               {"conv2d", "bias of shape [4]", "bias [1,4]"});
}

TEST(NnConvErrors, KernelLargerThanPaddedInput) {
  expect_error([] { F::conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 5, 5})); },
               {"conv2d", "kernel 5x5", "larger than the padded input 3x3", "[1,1,3,3]"});
  expect_error([] { F::conv2d(zeros({1, 1, 6, 6}), zeros({1, 1, 3, 3}), Tensor(), 1, 0, 3); },
               {"conv2d", "(7x7 dilated)", "larger than the padded input 6x6"});
  expect_error([] { F::conv1d(zeros({1, 1, 4}), zeros({1, 1, 3}), Tensor(), 1, 0, 2); },
               {"conv1d", "kernel 3 (5 dilated)", "padded input 4"});
  // Padding makes room: 3 + 2 * 1 >= 5.
  EXPECT_EQ(F::conv2d(zeros({1, 1, 3, 3}), zeros({1, 1, 5, 5}), Tensor(), 1, 1).shape(),
            (Shape{1, 1, 1, 1}));
}

TEST(NnConvErrors, StrideDilationPadding) {
  const Tensor x = zeros({1, 2, 5, 5}), w = zeros({2, 2, 3, 3});
  expect_error([&] { F::conv2d(x, w, Tensor(), {1, 0}); },
               {"conv2d", "stride must be >= 1", "1x0"});
  expect_error([&] { F::conv2d(x, w, Tensor(), 1, 0, 0); }, {"conv2d", "dilation must be >= 1"});
  expect_error([&] { F::conv2d(x, w, Tensor(), 1, -1); }, {"conv2d", "padding must be >= 0"});
  expect_error([] { F::conv1d(zeros({1, 2, 5}), zeros({2, 2, 3}), Tensor(), 0); },
               {"conv1d", "stride must be >= 1, got 0"});
}

TEST(NnConvErrors, DtypesAndDefined) {
  expect_error([] { F::conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}, kFloat64)); },
               {"conv2d", "one dtype", "f32", "f64"});
  expect_error([] { F::conv2d(zeros({1, 3, 5, 5}), zeros({4, 3, 3, 3}), zeros({4}, kFloat64)); },
               {"conv2d", "one dtype", "bias [4] f64"});
  expect_error([] { F::conv2d(zeros({1, 3, 5, 5}, kInt64), zeros({4, 3, 3, 3}, kInt64)); },
               {"conv2d", "floating", "i64"});
  expect_error([] { F::conv2d(Tensor(), zeros({4, 3, 3, 3})); }, {"conv2d"});
  expect_error([] { F::conv2d(zeros({1, 3, 5, 5}), Tensor()); }, {"conv2d", "weight"});
}

TEST(NnPoolErrors, PaddingAtMostHalfTheKernel) {
  const Tensor x = zeros({1, 2, 6, 6});
  expect_error([&] { F::max_pool2d(x, 2, std::nullopt, 2); },
               {"max_pool2d", "padding 2x2 must be at most half the kernel size 2x2",
                "[1,2,6,6] f32 cpu"});
  expect_error([&] { F::avg_pool2d(x, {3, 4}, std::nullopt, {1, 3}); },
               {"avg_pool2d", "padding 1x3", "at most half the kernel size 3x4"});
  expect_error([] { F::max_pool1d(zeros({1, 2, 6}), 3, std::nullopt, 2); },
               {"max_pool1d", "padding 2 must be at most half the kernel size 3", "[1,2,6]"});
  expect_error([&] { F::avg_pool2d(x, 2, std::nullopt, -1); },
               {"avg_pool2d", "padding must be >= 0"});
}

TEST(NnPoolErrors, KernelStrideRankDtype) {
  expect_error([] { F::max_pool2d(zeros({1, 2, 3, 3}), 4); },
               {"max_pool2d", "kernel 4x4 is larger than the padded input 3x3", "[1,2,3,3]"});
  expect_error([] { F::avg_pool1d(zeros({2, 3}), 4); },
               {"avg_pool1d", "kernel 4 is larger than the padded input 3", "[2,3]"});
  expect_error([] { F::max_pool2d(zeros({1, 2, 6, 6}), 0); },
               {"max_pool2d", "kernel_size must be >= 1"});
  expect_error([] { F::max_pool2d(zeros({1, 2, 6, 6}), 2, F::Size2(0)); },
               {"max_pool2d", "stride must be >= 1"});
  expect_error([] { F::max_pool2d(zeros({6, 6}), 2); },
               {"max_pool2d", "3-D (unbatched) or 4-D", "[6,6]"});
  expect_error([] { F::avg_pool1d(zeros({1, 1, 2, 6}), 2); },
               {"avg_pool1d", "2-D (unbatched) or 3-D", "[1,1,2,6]"});
  expect_error([] { F::max_pool2d(zeros({1, 2, 6, 6}, kInt64), 2); },
               {"max_pool2d", "floating", "i64"});
}

TEST(NnPoolErrors, DilationCeilModeAndEmptyWindows) {
  expect_error([] { F::max_pool2d(zeros({1, 2, 6, 6}), 2, std::nullopt, 0, {1, 0}); },
               {"max_pool2d", "dilation must be >= 1, got 1x0", "[1,2,6,6] f32 cpu"});
  expect_error([] { F::max_pool1d_with_indices(zeros({1, 2, 6}), 2, 1, 0, -1); },
               {"max_pool1d_with_indices", "dilation must be >= 1, got -1"});
  expect_error([] { F::max_pool2d(zeros({1, 1, 5, 5}), 3, F::Size2(1), 0, 3); },
               {"max_pool2d", "kernel 3x3 (7x7 dilated) is larger than the padded input 5x5",
                "[1,1,5,5]"});
  // Without ceil_mode a kernel larger than the input leaves no output; with it, one window.
  expect_error([] { F::max_pool2d(zeros({1, 1, 3, 3}), 4, F::Size2(2)); },
               {"max_pool2d", "kernel 4x4 is larger than the padded input 3x3"});
  expect_error([] { F::max_pool1d(zeros({1, 1, 3}), 5, 1, 0, 1, true); },
               {"max_pool1d", "kernel 5 is larger than the padded input 3"});
  // Padding 1 and dilation 2 over one row: window 0 has taps at -1 and 1, both outside.
  // (PyTorch returns -inf with an index outside the plane there.)
  expect_error([] { F::max_pool2d(zeros({1, 1, 1, 4}), 2, F::Size2(1), 1, 2); },
               {"max_pool2d", "the window of output row 0 holds only padding",
                "dilation 2x2, padding 1x1", "[1,1,1,4]"});
  expect_error([] { F::max_pool1d(zeros({2, 2}), 2, 1, 1, 3); },
               {"max_pool1d", "the window of output position 0 holds only padding"});
  expect_error([] { nn::MaxPool2d(2, 2, 0, 0)(zeros({1, 1, 4, 4})); },
               {"max_pool2d", "dilation must be >= 1"});
}

TEST(NnPoolErrors, MaxUnpool) {
  const Tensor x = zeros({1, 2, 3, 4});
  const Tensor indices = zeros({1, 2, 3, 4}, kInt64);
  expect_error([&] { F::max_unpool2d(x, indices.to(kFloat32), 2); },
               {"max_unpool2d", "indices must be int64", "[1,2,3,4] f32"});
  expect_error([&] { F::max_unpool2d(x, zeros({1, 2, 3, 3}, kInt64), 2); },
               {"max_unpool2d", "indices [1,2,3,3] i64 cpu", "the input's shape [1,2,3,4]"});
  expect_error([&] { F::max_unpool2d(zeros({2, 3}), zeros({2, 3}, kInt64), 2); },
               {"max_unpool2d", "3-D (unbatched) or 4-D", "[2,3]"});
  expect_error([&] { F::max_unpool2d(x.to(kInt64), indices, 2); },
               {"max_unpool2d", "floating", "i64"});
  expect_error([&] { F::max_unpool2d(x, Tensor(), 2); }, {"max_unpool2d", "indices"});
  expect_error([&] { F::max_unpool2d(x, indices, 2, F::Size2(0)); },
               {"max_unpool2d", "stride must be >= 1"});
  // The default output plane is 6x8 = 48 elements: index 48 is out of it.
  Tensor bad = zeros({1, 2, 3, 4}, kInt64);
  bad.fill_(48.0);
  expect_error([&] { F::max_unpool2d(x, bad, 2); },
               {"max_unpool2d", "index 48 is out of range for an output plane of 6x8 = 48"});
  bad.fill_(-1.0);
  expect_error([&] { F::max_unpool1d(zeros({2, 5}), bad.reshape({2, 12}).narrow(1, 0, 5), 2); },
               {"max_unpool1d",
                "index -1 is out of range for an output plane of 10 elements"});
  // output_size within stride of the default (6x8): (4, 8) and (6, 10) lie too far.
  expect_error([&] { F::max_unpool2d(x, indices, 2, std::nullopt, 0, F::Size2(4, 8)); },
               {"max_unpool2d", "output_size height 4 must lie strictly between 4 and 8"});
  expect_error([&] { F::max_unpool2d(x, indices, 2, std::nullopt, 0, F::Size2(6, 10)); },
               {"max_unpool2d", "output_size width 10 must lie strictly between 6 and 10"});
  EXPECT_EQ(F::max_unpool2d(x, indices, 2, std::nullopt, 0, F::Size2(7, 9)).shape(),
            Shape({1, 2, 7, 9}));
  expect_error([&] { F::max_unpool1d(zeros({2, 1}), zeros({2, 1}, kInt64), 2, 1, 1); },
               {"max_unpool1d", "default output length", "below 1"});
}

TEST(NnPoolErrors, Adaptive) {
  expect_error([] { F::adaptive_avg_pool2d(zeros({2, 5, 5}), {0, 2}); },
               {"adaptive_avg_pool2d", "output_size must be >= 1", "0x2", "[2,5,5]"});
  expect_error([] { F::adaptive_avg_pool2d(zeros({5, 5}), 2); },
               {"adaptive_avg_pool2d", "3-D (unbatched) or 4-D", "[5,5]"});
  expect_error([] { F::adaptive_avg_pool2d(zeros({1, 2, 5, 5}, kInt64), 2); },
               {"adaptive_avg_pool2d", "floating", "i64"});
}

}  // namespace
}  // namespace strata
