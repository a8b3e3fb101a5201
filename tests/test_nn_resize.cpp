// conv_transpose2d / ConvTranspose2d, interpolate / Upsample, adaptive_max_pool2d /
// AdaptiveMaxPool2d and BatchNorm's cumulative average (momentum = std::nullopt), against
// PyTorch (tests/data/gen_nn_resize.py), with float64 gradchecks (second derivatives too) and
// errors.
#include <gtest/gtest.h>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using Inputs = std::vector<Tensor>;

const test::Fixture& fixture() {
  static const test::Fixture f("nn_resize.txt");
  return f;
}

// Float32 sums in another order than the float64 reference.
void expect_case(const std::string& name, const std::vector<std::string>& inputs,
                 const std::function<Tensor(const Inputs&)>& fn) {
  test::expect_fixture_case(fixture(), name, inputs, inputs, fn, kFloat64, {1e-12, 1e-12});
  test::expect_fixture_case(fixture(), name, inputs, inputs, fn, kFloat32, {1e-4, 1e-5});
}

Tensor input(const Shape& shape, uint32_t seed) {
  return test::random_f64(shape, -1.0, 1.0, seed).set_requires_grad(true);
}

TEST(NnResize, ConvTransposeMatchesPyTorch) {
  expect_case("conv_transpose", {"a", "b", "c"},
              [](const Inputs& in) { return F::conv_transpose2d(in[0], in[1], in[2]); });
  expect_case("conv_transpose_strided", {"a", "b", "c"}, [](const Inputs& in) {
    return F::conv_transpose2d(in[0], in[1], in[2], {2, 3}, {1, 0}, {1, 2}, 2, {1, 2});
  });
  expect_case("conv_transpose_unbatched", {"a", "b"},
              [](const Inputs& in) { return F::conv_transpose2d(in[0], in[1], Tensor(), 2, 1); });
}

TEST(NnResize, ConvTransposeIsTheGradientOfConv) {
  // <conv2d(x, w), y> = <x, conv_transpose2d(y, w)> for matching sizes.
  const Tensor x = test::random_f64({2, 3, 7, 7}, -1.0, 1.0, 3);
  const Tensor w = test::random_f64({4, 3, 3, 2}, -1.0, 1.0, 4);
  const Tensor conv = F::conv2d(x, w, Tensor(), 2, 1);
  const Tensor y = test::random_f64(conv.shape(), -1.0, 1.0, 5);
  const Tensor back = F::conv_transpose2d(y, w, Tensor(), 2, 1, /*output_padding=*/{0, 1});
  ASSERT_EQ(back.shape(), x.shape());
  EXPECT_NEAR(sum(mul(conv, y)).item<double>(), sum(mul(x, back)).item<double>(), 1e-12);
}

TEST(NnResize, ConvTransposeGradcheckAndSecondDerivative) {
  const auto fn = [](const Inputs& in) {
    return F::conv_transpose2d(in[0], in[1], in[2], 2, 1, 1, /*groups=*/2);
  };
  const Inputs inputs = {input({1, 4, 3, 3}, 6), input({4, 1, 3, 3}, 7), input({2}, 8)};
  test::expect_gradcheck(fn, inputs);
  // The gradient of sum(y^2) is differentiable again.
  test::expect_gradcheck(
      [&](const Inputs& in) {
        EnableGradGuard on;
        Inputs leaves;
        for (const Tensor& t : in) {
          leaves.push_back(t.requires_grad() ? t : t.detach().clone().set_requires_grad(true));
        }
        const Tensor y = fn(leaves);
        return autograd::grad({sum(mul(y, y))}, {leaves[0]}, {}, std::nullopt, true)[0];
      },
      inputs);
}

TEST(NnResize, ConvTransposeLayer) {
  manual_seed(1);
  nn::ConvTranspose2d up(4, 6, 3, /*stride=*/2, /*padding=*/1, /*output_padding=*/1, /*groups=*/2);
  EXPECT_EQ(up.weight.shape(), (Shape{4, 3, 3, 3}));
  EXPECT_EQ(up.bias.shape(), (Shape{6}));
  // PyTorch's bound: 1 / sqrt(out / groups * R * S).
  const double bound = 1.0 / std::sqrt(27.0);
  EXPECT_LE(max(abs(up.weight)).item<double>(), bound);
  EXPECT_LE(max(abs(up.bias)).item<double>(), bound);
  const Tensor y = up.forward(randn({2, 4, 5, 5}));
  EXPECT_EQ(y.shape(), (Shape{2, 6, 10, 10}));
  EXPECT_EQ(up.extra_repr(),
            "4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
            "output_padding=(1, 1), groups=2");
}

TEST(NnResize, ConvTransposeMisuse) {
  const Tensor x = randn({1, 4, 3, 3}), w = randn({4, 2, 3, 3});
  test::expect_error(
      [&] {
        (void)F::conv_transpose2d(x, randn({3, 2, 3, 3}));
      },
      {"conv_transpose2d", "4 channels", "expects 3"});
  test::expect_error([&] { (void)F::conv_transpose2d(x, w, randn({3})); },
                     {"conv_transpose2d", "bias of shape [2]"});
  test::expect_error([&] { (void)F::conv_transpose2d(x, w, Tensor(), 2, 0, 2); },
                     {"conv_transpose2d", "output_padding", "smaller than either stride"});
  test::expect_error([&] { (void)F::conv_transpose2d(x, w, Tensor(), 1, 0, 0, 3); },
                     {"conv_transpose2d", "3 groups"});
  test::expect_error(
      [&] {
        (void)F::conv_transpose2d(randn({4, 3}), w);
      },
      {"conv_transpose2d", "3-D", "4-D"});
  test::expect_error([&] { (void)F::conv_transpose2d(x, w.to(kFloat64)); },
                     {"conv_transpose2d", "one dtype"});
  test::expect_error([&] { (void)F::conv_transpose2d(x, w, Tensor(), 1, 3); },
                     {"conv_transpose2d", "output would be"});
}

TEST(NnResize, InterpolateMatchesPyTorch) {
  using Mode = F::InterpolateMode;
  expect_case("nearest_scale", {"a"},
              [](const Inputs& in) { return F::interpolate(in[0], {.scale_factor = 2.0}); });
  expect_case("nearest_size", {"a"},
              [](const Inputs& in) { return F::interpolate(in[0], {.size = F::Size2(7, 3)}); });
  expect_case("bilinear_scale", {"a"}, [](const Inputs& in) {
    return F::interpolate(in[0], {.scale_factor = F::Scale2(1.5, 2.0), .mode = Mode::Bilinear});
  });
  expect_case("bilinear_size", {"a"}, [](const Inputs& in) {
    return F::interpolate(in[0], {.size = F::Size2(6, 9), .mode = Mode::Bilinear});
  });
  expect_case("bilinear_corners", {"a"}, [](const Inputs& in) {
    return F::interpolate(in[0],
                          {.size = F::Size2(7, 3), .mode = Mode::Bilinear, .align_corners = true});
  });
  expect_case("bilinear_down", {"a"}, [](const Inputs& in) {
    return F::interpolate(in[0], {.size = F::Size2(3, 2), .mode = Mode::Bilinear});
  });
  // The layer, on an unbatched input.
  nn::Upsample up({.scale_factor = 2.0, .mode = Mode::Bilinear});
  const Tensor x = fixture()["bilinear_size_a"];
  test::expect_close(up.forward(x.select(0, 1)),
                     F::interpolate(x, {.scale_factor = 2.0, .mode = Mode::Bilinear}).select(0, 1),
                     0.0, 0.0);
  EXPECT_EQ(up.extra_repr(), "scale_factor=(2, 2), mode=bilinear");
}

TEST(NnResize, InterpolateMisuse) {
  const Tensor x = randn({1, 2, 3, 3});
  test::expect_error([&] { (void)F::interpolate(x, {}); },
                     {"interpolate", "exactly one of size and scale_factor"});
  test::expect_error([&] { (void)F::interpolate(x, {.size = F::Size2(2), .scale_factor = 2.0}); },
                     {"interpolate", "exactly one"});
  test::expect_error([&] { (void)F::interpolate(x, {.scale_factor = -1.0}); },
                     {"interpolate", "positive"});
  test::expect_error([&] { (void)F::interpolate(x, {.scale_factor = 0.1}); },
                     {"interpolate", "cannot resize", "0x0"});
  test::expect_error([&] { (void)F::interpolate(x, {.size = F::Size2(4), .align_corners = true}); },
                     {"interpolate", "bilinear only"});
  test::expect_error(
      [&] {
        (void)F::interpolate(randn({3, 3}), {.size = F::Size2(4)});
      },
      {"interpolate", "3-D", "4-D"});
  test::expect_error(
      [&] {
        (void)F::interpolate(ones({1, 1, 2, 2}, kInt64), {.size = F::Size2(4)});
      },
      {"interpolate", "floating"});
  test::expect_error([] { nn::Upsample up({}); }, {"Upsample", "exactly one"});
}

TEST(NnResize, AdaptiveMaxPoolMatchesPyTorch) {
  expect_case("adaptive_max", {"a"}, [](const Inputs& in) {
    return F::adaptive_max_pool2d(in[0], {3, 4});
  });
  expect_case("adaptive_max_tiled", {"a"}, [](const Inputs& in) {
    return F::adaptive_max_pool2d(in[0], {2, 3});
  });
  nn::AdaptiveMaxPool2d pool({3, 4});
  const Tensor x = fixture()["adaptive_max_a"];
  test::expect_close(pool.forward(x.select(0, 0)), fixture()["adaptive_max_out"].select(0, 0), 0.0,
                     0.0);
  test::expect_error(
      [&] {
        (void)F::adaptive_max_pool2d(x, {0, 2});
      },
      {"adaptive_max_pool2d", "output_size must be >= 1"});
  test::expect_error(
      [&] {
        (void)F::adaptive_max_pool2d(randn({2, 3}), {1, 1});
      },
      {"adaptive_max_pool2d", "3-D", "4-D"});
}

TEST(NnResize, ResizingGradchecks) {
  using Mode = F::InterpolateMode;
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"nearest", [](const Inputs& in) { return F::interpolate(in[0], {.scale_factor = 1.7}); }},
      {"bilinear",
       [](const Inputs& in) {
         return F::interpolate(in[0], {.size = F::Size2(5, 2), .mode = Mode::Bilinear});
       }},
      {"adaptive_max",
       [](const Inputs& in) {
         return F::adaptive_max_pool2d(in[0], {2, 3});
       }},
  };
  for (const auto& [name, fn] : ops) {
    SCOPED_TRACE(name);
    test::expect_gradcheck(
        fn, {test::f64(test::distinct_values(40, 0.05, 9), {1, 2, 4, 5}).set_requires_grad(true)});
  }
}

TEST(NnResize, BatchNormCumulativeAverage) {
  nn::BatchNorm2d bn(3, 1e-5, /*momentum=*/std::nullopt);
  bn.to(kFloat64);
  for (int k = 0; k < 3; ++k)
    (void)bn.forward(fixture()["bn_cumulative_batch" + std::to_string(k)]);
  test::expect_close(bn.running_mean, fixture()["bn_cumulative_running_mean"], 1e-12, 1e-14);
  test::expect_close(bn.running_var, fixture()["bn_cumulative_running_var"], 1e-12, 1e-14);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 3);
  EXPECT_NE(bn.extra_repr().find("momentum=None"), std::string::npos);
  // Evaluation reads the statistics without moving them.
  bn.eval();
  (void)bn.forward(fixture()["bn_cumulative_batch0"]);
  test::expect_close(bn.running_mean, fixture()["bn_cumulative_running_mean"], 1e-12, 1e-14);
  test::expect_error([] { nn::BatchNorm1d bad(3, 1e-5, 1.5); },
                     {"BatchNorm1d", "momentum", "[0, 1]"});
}

}  // namespace
}  // namespace strata
