// conv3d / Conv3d, max_pool3d / MaxPool3d and avg_pool3d / AvgPool3d against PyTorch
// (tests/data/gen_nn_volume.py), with float64 gradchecks (the conv's second derivative too)
// and errors.
#include <gtest/gtest.h>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using Inputs = std::vector<Tensor>;

const test::Fixture& fixture() {
  static const test::Fixture f("nn_volume.txt");
  return f;
}

// Float32 sums in another order than the float64 reference.
void expect_case(const std::string& name, const std::vector<std::string>& inputs,
                 const std::function<Tensor(const Inputs&)>& fn) {
  test::expect_fixture_case(fixture(), name, inputs, inputs, fn, kFloat64, {1e-12, 1e-12});
  test::expect_fixture_case(fixture(), name, inputs, inputs, fn, kFloat32, {1e-4, 1e-5});
}

TEST(NnVolume, Conv3dMatchesPyTorch) {
  expect_case("conv3d", {"a", "b", "c"},
              [](const Inputs& in) { return F::conv3d(in[0], in[1], in[2]); });
  expect_case("conv3d_strided", {"a", "b"}, [](const Inputs& in) {
    return F::conv3d(in[0], in[1], Tensor(), {2, 1, 2}, {1, 2, 0}, {2, 1, 1}, 2);
  });
}

TEST(NnVolume, PoolingMatchesPyTorch) {
  expect_case("max_pool3d", {"a"}, [](const Inputs& in) {
    return F::max_pool3d(in[0], {2, 3, 2}, F::Size3(1, 2, 2), {1, 1, 0});
  });
  expect_case("max_pool3d_dilated", {"a"}, [](const Inputs& in) {
    return F::max_pool3d(in[0], 2, std::nullopt, 0, {2, 1, 2});
  });
  expect_case("avg_pool3d", {"a"}, [](const Inputs& in) {
    return F::avg_pool3d(in[0], {3, 2, 2}, F::Size3(2), {1, 1, 0});
  });
  expect_case("avg_pool3d_exclusive", {"a"}, [](const Inputs& in) {
    return F::avg_pool3d(in[0], 3, F::Size3(1, 2, 2), 1, /*count_include_pad=*/false);
  });
}

TEST(NnVolume, Layers) {
  manual_seed(3);
  nn::Conv3d conv(2, 4, {3, 3, 1}, 1, {1, 1, 0});
  EXPECT_EQ(conv.weight.shape(), (Shape{4, 2, 3, 3, 1}));
  EXPECT_LE(max(abs(conv.weight)).item<double>(), 1.0 / std::sqrt(18.0));
  const Tensor clip = randn({2, 2, 4, 6, 6});  // [N, C, frames, H, W]
  EXPECT_EQ(conv(clip).shape(), (Shape{2, 4, 4, 6, 6}));
  EXPECT_EQ(conv(clip.select(0, 0)).shape(), (Shape{4, 4, 6, 6}));  // unbatched
  EXPECT_EQ(nn::MaxPool3d(2)(clip).shape(), (Shape{2, 2, 2, 3, 3}));
  EXPECT_EQ(nn::AvgPool3d(F::Size3(1, 2, 2))(clip).shape(), (Shape{2, 2, 4, 3, 3}));
  EXPECT_EQ(conv.extra_repr(), "2, 4, kernel_size=(3, 3, 1), stride=(1, 1, 1), padding=(1, 1, 0)");
  EXPECT_EQ(nn::MaxPool3d(2).extra_repr(),
            "kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0), dilation=(1, 1, 1)");
}

TEST(NnVolume, Gradchecks) {
  const auto input = [](const Shape& shape, uint32_t seed) {
    return test::f64(test::distinct_values(static_cast<size_t>(numel_of(shape)), 0.01, seed), shape)
        .set_requires_grad(true);
  };
  test::expect_gradcheck(
      [](const Inputs& in) {
        return F::conv3d(in[0], in[1], in[2], {1, 2, 1}, 1, 1, 2);
      },
      {input({1, 2, 3, 4, 3}, 1), input({2, 1, 2, 2, 2}, 2), input({2}, 3)});
  test::expect_gradcheck([](const Inputs& in) { return F::max_pool3d(in[0], 2, 1, 1); },
                         {input({1, 1, 3, 3, 4}, 4)});
  test::expect_gradcheck(
      [](const Inputs& in) { return F::avg_pool3d(in[0], 3, 2, 1, /*count_include_pad=*/false); },
      {input({1, 2, 3, 4, 4}, 5)});
  // The conv's gradient is differentiable again (conv2d's maps).
  test::expect_gradcheck(
      [](const Inputs& in) {
        EnableGradGuard on;
        const Tensor x =
            in[0].requires_grad() ? in[0] : in[0].detach().clone().set_requires_grad(true);
        const Tensor y = F::conv3d(x, in[1]);
        return autograd::grad({sum(mul(y, y))}, {x}, {}, std::nullopt, true)[0];
      },
      {input({1, 1, 3, 3, 3}, 6), input({1, 1, 2, 2, 2}, 7)});
}

TEST(NnVolume, Misuse) {
  const Tensor clip = randn({1, 2, 4, 4, 4});
  test::expect_error(
      [&] {
        (void)F::conv3d(randn({2, 4, 4}), randn({1, 2, 1, 1, 1}));
      },
      {"conv3d", "4-D", "5-D"});
  test::expect_error([&] { (void)F::conv3d(clip, randn({1, 2, 1, 1})); }, {"conv3d", "5-D weight"});
  test::expect_error(
      [&] {
        (void)F::conv3d(clip, randn({1, 2, 5, 1, 1}));
      },
      {"conv3d", "depth extent 5", "depth 4"});
  test::expect_error(
      [&] {
        (void)F::conv3d(clip, randn({1, 3, 1, 1, 1}));
      },
      {"conv2d", "channels"});
  test::expect_error(
      [&] {
        (void)F::conv3d(clip, randn({3, 2, 1, 1, 1}), randn({2}));
      },
      {"conv3d", "bias of shape [3]"});
  test::expect_error(
      [&] {
        (void)F::max_pool3d(clip, 2, std::nullopt, {2, 0, 0});
      },
      {"max_pool3d", "at most half the kernel"});
  test::expect_error([&] { (void)F::avg_pool3d(clip, 2, 0); }, {"avg_pool3d", "positive"});
  test::expect_error([&] { (void)F::avg_pool3d(clip.to(kInt64), 2); }, {"avg_pool3d", "floating"});
  test::expect_error([] { nn::Conv3d(2, 4, {0, 1, 1}); }, {"Conv3d", "kernel_size"});
}

}  // namespace
}  // namespace strata
