// Layer options structs (designated initializers), ModuleHolder (a member submodule called as
// conv1(x)) and the check for submodules called but never registered.
#include <gtest/gtest.h>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;

TEST(NnOptions, DesignatedInitializersMatchThePositionalForm) {
  nn::Conv2d conv({.in = 3, .out = 16, .kernel = 3, .padding = 1, .bias = false});
  EXPECT_EQ(conv.weight.shape(), (Shape{16, 3, 3, 3}));
  EXPECT_FALSE(conv.bias.defined());
  EXPECT_EQ(conv.extra_repr(), nn::Conv2d(3, 16, 3, 1, 1, 1, 1, false).extra_repr());

  nn::Linear linear({.in = 4, .out = 2});
  EXPECT_EQ(linear.weight.shape(), (Shape{2, 4}));
  EXPECT_TRUE(linear.bias.defined());
  nn::Conv3d conv3d({.in = 2, .out = 4, .kernel = {1, 3, 3}, .padding = {0, 1, 1}});
  EXPECT_EQ(conv3d.weight.shape(), (Shape{4, 2, 1, 3, 3}));
  nn::Conv1d conv1d({.in = 2, .out = 4, .kernel = 5, .stride = 2, .groups = 2});
  EXPECT_EQ(conv1d.weight.shape(), (Shape{4, 1, 5}));
  EXPECT_EQ(conv1d.stride, 2);
  nn::ConvTranspose2d up({.in = 4, .out = 2, .kernel = 2, .stride = 2});
  EXPECT_EQ(up.forward(zeros({1, 4, 3, 3})).shape(), (Shape{1, 2, 6, 6}));
  nn::Embedding embedding({.num_embeddings = 10, .embedding_dim = 3, .padding_idx = 0});
  EXPECT_EQ(embedding.padding_idx, 0);

  nn::MaxPool2d pool({.kernel = 3, .stride = 2, .padding = 1});
  EXPECT_EQ(pool.forward(zeros({1, 1, 8, 8})).shape(), (Shape{1, 1, 4, 4}));
  nn::MaxPool2d square({.kernel = {2, 3}});
  EXPECT_EQ(square.kernel_size.h, 2);
  EXPECT_EQ(square.kernel_size.w, 3);
  EXPECT_EQ(square.stride.w, 3);
  nn::AvgPool2d avg({.kernel = 2, .count_include_pad = false});
  EXPECT_FALSE(avg.count_include_pad);
  nn::AvgPool1d avg1d({.kernel = 4, .stride = 2});
  EXPECT_EQ(avg1d.stride, 2);
  nn::MaxPool1d max1d({.kernel = 2, .ceil_mode = true});
  EXPECT_TRUE(max1d.ceil_mode);

  nn::BatchNorm2d bn({.features = 8, .momentum = std::nullopt, .affine = false});
  EXPECT_FALSE(bn.momentum.has_value());
  EXPECT_FALSE(bn.weight.defined());
  nn::BatchNorm1d bn1d({.features = 4, .track_running_stats = false});
  EXPECT_FALSE(bn1d.running_mean.defined());
  nn::LayerNorm ln({.shape = {4, 5}, .eps = 1e-3});
  EXPECT_EQ(ln.weight.shape(), (Shape{4, 5}));
  nn::GroupNorm gn({.groups = 2, .channels = 6});
  EXPECT_EQ(gn.num_groups, 2);
  nn::InstanceNorm2d in({.features = 3, .affine = true});
  EXPECT_TRUE(in.weight.defined());
  // The same checks as the positional form.
  test::expect_error([] { nn::Conv2d bad({.in = 3, .out = 16}); },
                     {"Conv2d", "kernel_size must be positive"});
}

struct Block : nn::Module {
  nn::ModuleHolder<nn::Conv2d> conv1;
  nn::ModuleHolder<nn::BatchNorm2d> bn1;
  Block() : Module("Block") {
    conv1 = register_module("conv1", nn::ModuleHolder<nn::Conv2d>(2, 4, 3, 1, 1));
    bn1 = register_module("bn1", nn::ModuleHolder<nn::BatchNorm2d>(4));
  }
  Tensor forward(const Tensor& x) override { return F::relu(bn1(conv1(x))); }
};

TEST(NnHolder, MemberSubmodulesCallLikeFunctions) {
  Block block;
  const Tensor y = block(randn({2, 2, 5, 5}));
  EXPECT_EQ(y.shape(), (Shape{2, 4, 5, 5}));
  EXPECT_EQ(block.parameters().size(), 4u);  // conv weight and bias, bn weight and bias
  EXPECT_EQ(block.conv1->out_channels, 4);
  EXPECT_EQ((*block.bn1).num_features, 4);
  EXPECT_EQ(block.state_dict().count("bn1.running_mean"), 1u);
  // A holder of a module with several arguments reaches its own forward.
  nn::ModuleHolder<nn::MaxUnpool2d> unpool(2);
  auto [pooled, indices] = nn::MaxPool2d(2).forward_with_indices(randn({1, 1, 4, 4}));
  EXPECT_EQ(unpool(pooled, indices).shape(), (Shape{1, 1, 4, 4}));
  // An empty holder says what is missing.
  nn::ModuleHolder<nn::Linear> empty;
  EXPECT_FALSE(empty);
  test::expect_error([&] { (void)empty(zeros({1, 2})); }, {"ModuleHolder", "no module is held"});
}

// A module that keeps a layer without registering it: its weights never train.
struct Forgetful : nn::Module {
  std::shared_ptr<nn::Linear> registered, forgotten;
  Forgetful() : Module("Forgetful") {
    registered = register_module("registered", std::make_shared<nn::Linear>(3, 3));
    forgotten = std::make_shared<nn::Linear>(3, 3);
  }
  Tensor forward(const Tensor& x) override { return (*forgotten)((*registered)(x)); }
};

// Restores the process-wide mode when a test ends.
class UnregisteredMode {
 public:
  explicit UnregisteredMode(nn::UnregisteredCheck mode) : previous_(nn::unregistered_check()) {
    nn::set_unregistered_check(mode);
  }
  ~UnregisteredMode() { nn::set_unregistered_check(previous_); }
  UnregisteredMode(const UnregisteredMode&) = delete;
  UnregisteredMode& operator=(const UnregisteredMode&) = delete;

 private:
  nn::UnregisteredCheck previous_;
};

TEST(NnHolder, UnregisteredSubmodulesAreReported) {
  const UnregisteredMode mode(nn::UnregisteredCheck::Throw);
  Forgetful net;
  test::expect_error(
      [&] {
        (void)net(zeros({2, 3}));
      },
      {"a Linear was called inside the forward of Forgetful", "not registered", "register_module"});
  // Registered modules, nested containers and a module called on its own are fine.
  Block block;
  (void)block(zeros({1, 2, 3, 3}));
  nn::Sequential seq(nn::Linear(3, 4), nn::ReLU(), nn::Linear(4, 2));
  (void)seq(zeros({2, 3}));
  (void)(*net.forgotten)(zeros({2, 3}));
  // Off: no check.
  nn::set_unregistered_check(nn::UnregisteredCheck::Off);
  EXPECT_EQ(net(zeros({2, 3})).shape(), (Shape{2, 3}));
}

}  // namespace
}  // namespace strata
