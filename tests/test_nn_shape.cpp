// F::pad, pixel_shuffle / pixel_unshuffle, group_norm and instance_norm (and their layers):
// values and gradients against PyTorch (tests/data/gen_nn_shape.py), f64 gradchecks, errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using Inputs = std::vector<Tensor>;

const test::Fixture& fixture() {
  static const test::Fixture f("nn_shape.txt");
  return f;
}

// Float32 normalizations sum in another order than the float64 reference.
void expect_case(const std::string& name, const std::vector<std::string>& inputs,
                 const std::function<Tensor(const Inputs&)>& fn) {
  test::expect_fixture_case(fixture(), name, inputs, inputs, fn, kFloat64, {1e-12, 1e-12});
  test::expect_fixture_case(fixture(), name, inputs, inputs, fn, kFloat32, {1e-4, 1e-5});
}

TEST(NnShape, PadMatchesPyTorch) {
  expect_case("pad_constant", {"a"},
              [](const Inputs& in) { return F::pad(in[0], {1, 2, 0, 1}, F::PadMode::Constant, 1.5); });
  expect_case("pad_constant_crop", {"a"},
              [](const Inputs& in) { return F::pad(in[0], {-1, 2, 1, -2}); });
  expect_case("pad_reflect", {"a"},
              [](const Inputs& in) { return F::pad(in[0], {2, 3, 3, 1}, F::PadMode::Reflect); });
  expect_case("pad_replicate", {"a"},
              [](const Inputs& in) { return F::pad(in[0], {3, 0, 2, 4}, F::PadMode::Replicate); });
  expect_case("pad_reflect_1d", {"a"},
              [](const Inputs& in) { return F::pad(in[0], {2, 2}, F::PadMode::Reflect); });
}

TEST(NnShape, PixelShuffleMatchesPyTorchAndUnshuffleUndoesIt) {
  expect_case("pixel_shuffle", {"a"}, [](const Inputs& in) { return F::pixel_shuffle(in[0], 2); });
  expect_case("pixel_unshuffle", {"a"},
              [](const Inputs& in) { return nn::PixelUnshuffle(2)(in[0]); });
  const Tensor x = randn({2, 12, 3, 5});
  test::expect_close(F::pixel_unshuffle(nn::PixelShuffle(2)(x), 2), x, 0.0, 0.0);
}

TEST(NnShape, GroupAndInstanceNormMatchPyTorch) {
  expect_case("group_norm", {"a"}, [](const Inputs& in) { return F::group_norm(in[0], 2); });
  expect_case("group_norm_affine", {"a", "b", "c"},
              [](const Inputs& in) { return F::group_norm(in[0], 3, in[1], in[2], 1e-3); });
  expect_case("instance_norm", {"a"}, [](const Inputs& in) { return F::instance_norm(in[0]); });
  expect_case("instance_norm_affine", {"a", "b", "c"},
              [](const Inputs& in) { return F::instance_norm(in[0], in[1], in[2]); });
}

TEST(NnShape, LayersHoldTheirParameters) {
  nn::GroupNorm group(2, 6);
  EXPECT_EQ(group.parameter_count(), 12);
  EXPECT_EQ(group.str(), "GroupNorm(2, 6, eps=1e-05, affine=true)");
  nn::InstanceNorm2d instance(3);
  EXPECT_EQ(instance.parameter_count(), 0);
  EXPECT_EQ(nn::InstanceNorm1d(4, 1e-5, true).parameter_count(), 8);
  const Tensor x = randn({2, 6, 3, 3});
  test::expect_close(group(x), F::group_norm(x, 2, group.weight, group.bias));
  test::expect_error([&] { (void)instance(x); }, {"InstanceNorm2d", "3 channels"});
  test::expect_error([] { nn::GroupNorm(4, 6); }, {"GroupNorm", "6 channels", "4 groups"});
}

TEST(NnShape, GradcheckInFloat64) {
  Generator gen(8);
  const auto input = [&](const Shape& shape) {
    return randn(shape, TensorOptions(kFloat64), &gen).set_requires_grad(true);
  };
  const std::vector<std::pair<std::string, std::function<Tensor(const Inputs&)>>> ops = {
      {"pad_reflect", [](const Inputs& in) { return F::pad(in[0], {2, 1, 1, 2}, F::PadMode::Reflect); }},
      {"pad_replicate", [](const Inputs& in) { return F::pad(in[0], {0, 3}, F::PadMode::Replicate); }},
      {"pad_constant", [](const Inputs& in) { return F::pad(in[0], {1, -1, -1, 2}, F::PadMode::Constant, 2.0); }},
      {"pixel_shuffle", [](const Inputs& in) { return F::pixel_shuffle(in[0].reshape({1, 4, 2, 4}), 2); }},
      {"group_norm", [](const Inputs& in) { return F::group_norm(in[0].reshape({2, 4, 2, 2}), 2); }},
  };
  for (const auto& [name, fn] : ops) {
    SCOPED_TRACE(name);
    const GradcheckResult result = gradcheck(fn, {input({2, 4, 4})});
    EXPECT_TRUE(result.ok) << result.message;
  }
}

TEST(NnShape, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = randn({1, 2, 3, 4});
  test::expect_error([&] { (void)F::pad(x, {1}); }, {"pad", "pairs"});
  test::expect_error([&] { (void)F::pad(x, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}); }, {"pad"});
  test::expect_error([&] { (void)F::pad(x, {4, 0}, F::PadMode::Reflect); },
                     {"pad", "reflect", "smaller than dimension 3"});
  test::expect_error([&] { (void)F::pad(x, {-1, 0}, F::PadMode::Replicate); },
                     {"pad", "replicate", "non-negative"});
  test::expect_error([&] { (void)F::pad(x, {-3, -2}); }, {"pad", "negative size"});
  test::expect_error([&] { (void)F::pixel_shuffle(x, 2); }, {"pixel_shuffle", "multiple of 4"});
  test::expect_error([&] { (void)F::pixel_unshuffle(x, 2); }, {"pixel_unshuffle", "multiples"});
  test::expect_error([&] { (void)F::pixel_shuffle(x.reshape({2, 3, 4}), 1); },
                     {"pixel_shuffle", "[N, C, H, W]"});
  test::expect_error([&] { (void)F::group_norm(x, 3); }, {"group_norm", "2 channels", "3 groups"});
  test::expect_error([&] { (void)F::instance_norm(randn({2, 3})); }, {"instance_norm"});
  test::expect_error([&] { (void)F::group_norm(x.to(kInt64), 1); }, {"group_norm", "floating"});
}

}  // namespace
}  // namespace strata
