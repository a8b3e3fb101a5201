// Module containers and module-wide tools: ModuleList, ModuleDict, a named Sequential,
// apply(), as<T>(), freeze()/unfreeze() and forward hooks.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;

// A residual tower over a ModuleList and two heads in a ModuleDict.
struct Tower : nn::Module {
  std::shared_ptr<nn::ModuleList> blocks;
  std::shared_ptr<nn::ModuleDict> heads;
  Tower() : Module("Tower") {
    manual_seed(3);
    blocks = register_module("blocks", std::make_shared<nn::ModuleList>());
    for (int i = 0; i < 3; ++i) blocks->push_back(nn::Linear(4, 4));
    heads = register_module("heads", std::make_shared<nn::ModuleDict>());
    heads->insert("score", nn::Linear(4, 1));
    heads->insert("label", std::make_shared<nn::Linear>(4, 3));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = x;
    for (const auto& block : *blocks) h = add(h, (*block)(h));
    return (*heads)["label"](h);
  }
};

TEST(NnContainers, ModuleListAndModuleDictRegisterTheirModules) {
  Tower tower;
  EXPECT_EQ(tower.blocks->size(), 3u);
  EXPECT_EQ(tower.heads->keys(), (std::vector<std::string>{"score", "label"}));
  EXPECT_TRUE(tower.heads->contains("score"));
  EXPECT_FALSE(tower.heads->contains("box"));
  const nn::StateDict state = tower.state_dict();
  for (const char* key : {"blocks.0.weight", "blocks.2.bias", "heads.score.weight",
                          "heads.label.bias"}) {
    EXPECT_TRUE(state.contains(key)) << key;
  }
  EXPECT_EQ(tower.parameter_count(), 3 * (16 + 4) + (4 + 1) + (12 + 3));
  EXPECT_EQ(tower(ones({2, 4})).shape(), (Shape{2, 3}));
  ASSERT_NE(tower.blocks->ptr<nn::Linear>(1), nullptr);
  EXPECT_EQ(tower.blocks->ptr<nn::ReLU>(1), nullptr);
  EXPECT_EQ(tower.heads->ptr<nn::Linear>("score")->out_features, 1);
  test::expect_error([&] { (void)(*tower.heads)["box"]; },
                     {"ModuleDict", "no module named 'box'", "score, label"});
  test::expect_error([&] { (void)(*tower.blocks)[3]; }, {"ModuleList", "index 3", "3 modules"});
  test::expect_error([&] { tower.heads->insert("score", nn::ReLU()); },
                     {"ModuleDict", "'score' is already registered"});
  test::expect_error([&] { (void)(*tower.blocks)(ones({1})); }, {"ModuleList"});
}

TEST(NnContainers, NamedSequential) {
  manual_seed(1);
  nn::Sequential net({{"fc", std::make_shared<nn::Linear>(3, 2)},
                      {"act", std::make_shared<nn::Tanh>()}});
  net.push_back("out", std::make_shared<nn::Linear>(2, 1));
  EXPECT_EQ(net.size(), 3u);
  EXPECT_EQ(net.named_children()[2].first, "out");
  EXPECT_TRUE(net.state_dict().contains("fc.weight"));
  EXPECT_NE(net["act"].as<nn::Tanh>(), nullptr);
  EXPECT_EQ(&net["out"], &net[2]);
  const Tensor x = test::f32({1, 2, 3}, {1, 3});
  auto* fc = net["fc"].as<nn::Linear>();
  auto* out = net["out"].as<nn::Linear>();
  test::expect_close(net(x), (*out)(F::tanh((*fc)(x))));
  test::expect_error([&] { (void)net["missing"]; }, {"Sequential", "'missing'", "fc, act, out"});
}

TEST(NnContainers, ApplyVisitsChildrenFirstAndAsCasts) {
  Tower tower;
  std::vector<std::string> order;
  tower.apply([&](nn::Module& m) {
    order.push_back(m.type_name());
    if (auto* linear = m.as<nn::Linear>()) {
      NoGradGuard no_grad;
      linear->bias.zero_();
    }
  });
  EXPECT_EQ(order, (std::vector<std::string>{"Linear", "Linear", "Linear", "ModuleList",
                                             "Linear", "Linear", "ModuleDict", "Tower"}));
  for (const auto& [name, p] : tower.named_parameters()) {
    if (name.ends_with("bias")) {
      EXPECT_EQ(sum(abs(p)).item<double>(), 0.0) << name;
    }
  }
  EXPECT_EQ(tower.as<nn::Linear>(), nullptr);
  EXPECT_NE(tower.as<Tower>(), nullptr);
}

TEST(NnContainers, FrozenParametersGetNoGradientAndOptimizersSkipThem) {
  manual_seed(2);
  nn::Sequential net(nn::Linear(3, 3), nn::BatchNorm1d(3), nn::Linear(3, 1));
  net[0].freeze();
  net[1].freeze();
  EXPECT_EQ(net.parameter_count(/*trainable_only=*/true), 3 + 1);
  const Tensor before = net[0].as<nn::Linear>()->weight.clone();
  const Tensor mean_before = net[1].as<nn::BatchNorm1d>()->running_mean.clone();
  optim::SGD sgd(net.parameters(), {.lr = 0.5});
  sgd.zero_grad();
  sum(net(randn({8, 3}))).backward();
  EXPECT_FALSE(net[0].as<nn::Linear>()->weight.grad().defined());
  EXPECT_TRUE(net[2].as<nn::Linear>()->weight.grad().defined());
  sgd.step();
  test::expect_close(net[0].as<nn::Linear>()->weight, before);
  // Frozen, but in train mode: batch norm's running statistics still move (documented).
  EXPECT_GT(sum(abs(sub(net[1].as<nn::BatchNorm1d>()->running_mean, mean_before))).item<double>(),
            0.0);
  net[0].unfreeze();
  sum(net(randn({8, 3}))).backward();
  EXPECT_TRUE(net[0].as<nn::Linear>()->weight.grad().defined());
}

TEST(NnContainers, ForwardHooksSeeAndReplaceInputsAndOutputs) {
  manual_seed(4);
  nn::Linear linear(2, 2);
  std::vector<Shape> seen;
  const int64_t pre = linear.register_forward_pre_hook(
      [](nn::Module&, const Tensor& input) -> std::optional<Tensor> { return mul(input, 2.0); });
  const int64_t post = linear.register_forward_hook(
      [&](nn::Module& m, const Tensor& input, const Tensor& output) -> std::optional<Tensor> {
        EXPECT_EQ(m.type_name(), "Linear");
        seen.push_back(input.shape());
        seen.push_back(output.shape());
        return std::nullopt;  // keeps the output
      });
  const Tensor x = test::f32({1, -1}, {1, 2});
  test::expect_close(linear(x), linear.forward(mul(x, 2.0)));
  EXPECT_EQ(seen, (std::vector<Shape>{{1, 2}, {1, 2}}));
  linear.remove_hook(pre);
  test::expect_close(linear(x), linear.forward(x));
  linear.remove_hook(post);
  linear(x);
  EXPECT_EQ(seen.size(), 4u);
  test::expect_error([&] { linear.remove_hook(post); }, {"Linear", "remove_hook", "no hook"});
}

}  // namespace
}  // namespace strata
