// nn::Module and the layers: registration and naming, traversal, modes, placement, state dicts
// (PyTorch's key names), printing and summary, layer defaults, and one end-to-end reference:
// a small CNN loaded with PyTorch's weights gives PyTorch's logits, loss, gradients and
// running statistics (tests/data/gen_nn_model.py).
#include <gtest/gtest.h>

#include <cmath>

#include "fixtures.h"
#include "strata/nn/layers.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace F = nn::functional;

// A user module in PyTorch's style: submodules and a parameter of its own.
struct TwoLayer : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  Tensor scale;
  TwoLayer() : Module("TwoLayer") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 3));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(3, 2, /*bias=*/false));
    scale = register_parameter("scale", ones({2}));
  }
  Tensor forward(const Tensor& x) override { return (*fc2)(F::relu((*fc1)(x))) * scale; }
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> out;
  for (const auto& e : named) out.push_back(e.first);
  return out;
}

TEST(NnModule, NamesComposeWithDots) {
  TwoLayer net;
  EXPECT_EQ(names_of(net.named_parameters()),
            (std::vector<std::string>{"scale", "fc1.weight", "fc1.bias", "fc2.weight"}));
  EXPECT_EQ(names_of(net.named_parameters(/*recurse=*/false)), std::vector<std::string>{"scale"});
  EXPECT_EQ(net.parameters().size(), 4u);
  EXPECT_EQ(net.parameter_count(), 2 + 4 * 3 + 3 + 3 * 2);
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.requires_grad());
  auto modules = net.named_modules();
  ASSERT_EQ(modules.size(), 3u);
  EXPECT_EQ(modules[0].first, "");
  EXPECT_EQ(modules[1].first, "fc1");
  EXPECT_EQ(modules[2].first, "fc2");
}

TEST(NnModule, SequentialNamesChildrenByIndex) {
  nn::Sequential net(nn::Linear(3, 4), nn::ReLU(), nn::BatchNorm1d(4), nn::Linear(4, 2));
  ASSERT_EQ(net.size(), 4u);
  const auto state = net.state_dict();
  std::vector<std::string> keys;
  for (const auto& e : state) keys.push_back(e.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"0.bias", "0.weight", "2.bias",
                                            "2.num_batches_tracked", "2.running_mean",
                                            "2.running_var", "2.weight", "3.bias", "3.weight"}));
  EXPECT_EQ(net[3].type_name(), "Linear");
  EXPECT_THROW(net[4], Error);
}

TEST(NnModule, SharedModuleYieldsItsParametersOnce) {
  auto shared = std::make_shared<nn::Linear>(2, 2);
  nn::Sequential net(shared, nn::Tanh(), shared);
  EXPECT_EQ(net.parameters().size(), 2u);
}

TEST(NnModule, RegistrationErrors) {
  struct Bad : nn::Module {
    Bad() : Module("Bad") {}
    void twice() {
      register_parameter("w", zeros({2}));
      register_buffer("w", zeros({2}));
    }
    void dotted() { register_parameter("a.b", zeros({2})); }
    void integer() { register_parameter("i", zeros({2}, kInt64)); }
  };
  Bad bad;
  EXPECT_THROW(bad.twice(), Error);
  EXPECT_THROW(bad.dotted(), Error);
  EXPECT_THROW(bad.integer(), Error);
  try {
    Bad fresh;
    fresh.twice();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already registered"), std::string::npos) << e.what();
  }
}

TEST(NnModule, TrainAndEvalReachEverySubmodule) {
  nn::Sequential net(nn::Linear(2, 2), nn::Sequential(nn::Dropout(0.5), nn::ReLU()));
  EXPECT_TRUE(net.is_training());
  net.eval();
  for (auto& [name, m] : net.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net.train();
  for (auto& [name, m] : net.named_modules()) EXPECT_TRUE(m->is_training()) << name;
}

TEST(NnModule, DropoutIsIdentityInEval) {
  nn::Dropout drop(0.5);
  Tensor x = random_f32({64, 64}, -1, 1, 3);
  drop.eval();
  expect_close(drop(x), x, 0, 0);
  drop.train();
  Tensor y = drop(x);
  const double zeros_fraction = (y == 0.0).to(kFloat64).mean().item<double>();
  EXPECT_GT(zeros_fraction, 0.4);
  EXPECT_LT(zeros_fraction, 0.6);
}

TEST(NnModule, ToDtypeConvertsInPlaceForEveryHandle) {
  TwoLayer net;
  Tensor member = net.fc1->weight;  // a handle kept elsewhere, as an optimizer keeps one
  net.to(kFloat64);
  EXPECT_EQ(member.dtype(), kFloat64);
  EXPECT_EQ(net.fc1->weight.dtype(), kFloat64);
  EXPECT_TRUE(member.requires_grad());
  EXPECT_TRUE(member.is_same(net.parameters()[1]));
  // The converted network still trains: gradients reach the converted parameters.
  Tensor x = random_f64({5, 4}, -1, 1, 7);
  net(x).sum().backward();
  ASSERT_TRUE(member.grad().defined());
  EXPECT_EQ(member.grad().dtype(), kFloat64);
  nn::BatchNorm1d bn(3);
  bn.to(kFloat64);
  EXPECT_EQ(bn.running_mean.dtype(), kFloat64);
  EXPECT_EQ(bn.num_batches_tracked.dtype(), kInt64);  // integer buffers keep their dtype
}

TEST(NnModule, ZeroGradDropsGradients) {
  TwoLayer net;
  net(random_f32({3, 4}, -1, 1, 1)).sum().backward();
  for (const Tensor& p : net.parameters()) EXPECT_TRUE(p.grad().defined());
  net.zero_grad();
  for (const Tensor& p : net.parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(NnModule, StateDictRoundTrip) {
  TwoLayer a, b;
  b.load_state_dict(a.state_dict());
  for (const auto& [name, t] : a.state_dict()) expect_close(b.state_dict().at(name), t, 0, 0);
  Tensor x = random_f32({2, 4}, -1, 1, 5);
  expect_close(b(x), a(x), 0, 0);
  // The state dict shares data: changing the module shows in it.
  auto state = a.state_dict();
  a.scale.detach().fill_(3.0);
  EXPECT_EQ(state.at("scale").to_vector<float>()[0], 3.0f);
}

TEST(NnModule, LoadStateDictErrorsNameTheKeys) {
  TwoLayer net;
  auto state = net.state_dict();
  state.erase("fc1.bias");
  state["extra"] = zeros({1});
  try {
    net.load_state_dict(state);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("missing: [fc1.bias]"), std::string::npos) << what;
    EXPECT_NE(what.find("unexpected: [extra]"), std::string::npos) << what;
  }
  net.load_state_dict(state, /*strict=*/false);  // loads what matches
  auto wrong = net.state_dict();
  wrong["fc1.weight"] = zeros({4, 3});
  try {
    net.load_state_dict(wrong);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("fc1.weight"), std::string::npos) << what;
    EXPECT_NE(what.find("[4,3]"), std::string::npos) << what;
  }
}

TEST(NnModule, PrintsLikePyTorch) {
  nn::Sequential net(nn::Conv2d(1, 6, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                     nn::Linear(864, 10, false));
  EXPECT_EQ(net.str(),
            "Sequential(\n"
            "  (0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))\n"
            "  (1): ReLU()\n"
            "  (2): MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))\n"
            "  (3): Flatten(start_dim=1, end_dim=-1)\n"
            "  (4): Linear(in_features=864, out_features=10, bias=false)\n"
            ")");
}

TEST(NnModule, SummaryListsShapesAndCounts) {
  nn::Sequential net(nn::Conv2d(1, 6, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                     nn::Linear(864, 10));
  net.train();
  const std::string s = net.summary({2, 1, 28, 28});
  EXPECT_NE(s.find("0 (Conv2d)"), std::string::npos) << s;
  EXPECT_NE(s.find("[2,6,24,24]"), std::string::npos) << s;
  EXPECT_NE(s.find("156"), std::string::npos) << s;  // 6 * 25 + 6
  EXPECT_NE(s.find("[2,864]"), std::string::npos) << s;
  EXPECT_NE(s.find("Total params: 8,806"), std::string::npos) << s;  // 156 + 8650
  EXPECT_TRUE(net.is_training());  // summary restores the mode
}

TEST(NnModule, SummaryShowsAContainersTotal) {
  auto features = std::make_shared<nn::Sequential>(nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 8));
  nn::Sequential net(std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>>{
      {"features", features}, {"head", std::make_shared<nn::Linear>(8, 2)}});
  const std::string s = net.summary({3, 4});
  // The row of `name`, up to its end: the count comes last.
  const auto row = [&](const std::string& name) {
    const size_t begin = s.find(name + " (");
    return begin == std::string::npos ? std::string() : s.substr(begin, s.find('\n', begin) - begin);
  };
  EXPECT_TRUE(row("features").ends_with(" 112")) << s;  // 40 + 72 in the block
  EXPECT_TRUE(row("features.2").ends_with(" 72")) << s;
  EXPECT_TRUE(row("head").ends_with(" 18")) << s;
  EXPECT_NE(s.find("Total params: 130"), std::string::npos) << s;
}

TEST(NnLayers, DefaultInitializationBounds) {
  nn::Linear fc(400, 50);
  const double bound = 1.0 / std::sqrt(400.0);
  for (const Tensor& t : {fc.weight, fc.bias}) {
    EXPECT_LE(t.max().item<float>(), bound);
    EXPECT_GE(t.min().item<float>(), -bound);
    EXPECT_GT(t.max().item<float>(), 0.9 * bound);  // spread over the whole range
  }
  nn::Conv2d conv(3, 8, 3);
  const double conv_bound = 1.0 / std::sqrt(27.0);
  EXPECT_LE(conv.weight.abs().max().item<float>(), conv_bound);
  nn::Embedding emb(10, 4, 2);
  EXPECT_EQ(emb.weight.select(0, 2).abs().sum().item<float>(), 0.0f);
  nn::BatchNorm2d bn(3);
  expect_close(bn.weight, ones({3}), 0, 0);
  expect_close(bn.running_var, ones({3}), 0, 0);
}

TEST(NnLayers, BatchNormValidatesInput) {
  nn::BatchNorm2d bn(3);
  try {
    bn(zeros({2, 4, 5, 5}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("BatchNorm2d: expected 3 channels"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(bn(zeros({2, 3})), Error);
}

TEST(NnLayers, MaxoutKeepsTheLargestPiece) {
  nn::Maxout layer(3, 2, 4);
  EXPECT_EQ(layer.weight.shape(), (Shape{8, 3}));
  Tensor x = random_f32({5, 3}, -1, 1, 11);
  Tensor pieces = F::linear(x, layer.weight, layer.bias).view({5, 2, 4});
  expect_close(layer(x), pieces.max({2}));
}

// ---- end to end against PyTorch ---------------------------------------------------------

struct ReferenceNet : nn::Module {
  std::shared_ptr<nn::Sequential> features;
  std::shared_ptr<nn::Flatten> flatten;
  std::shared_ptr<nn::Linear> fc1, fc2;
  std::shared_ptr<nn::LayerNorm> norm;
  ReferenceNet() : Module("ReferenceNet") {
    features = register_module(
        "features", std::make_shared<nn::Sequential>(
                        nn::Conv2d(2, 4, 3, 1, 1), nn::BatchNorm2d(4), nn::ReLU(),
                        nn::MaxPool2d(2), nn::Conv2d(4, 6, 3, 1, 0, 1, 2), nn::Tanh(),
                        nn::AvgPool2d(2)));
    flatten = register_module("flatten", std::make_shared<nn::Flatten>());
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(6, 8));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{8}));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 3));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = (*flatten)((*features)(x));
    return (*fc2)(F::gelu((*norm)((*fc1)(h))));
  }
};

TEST(NnReference, SmallCnnMatchesPyTorch) {
  Fixture ref("nn_model.txt");
  ReferenceNet net;
  net.to(kFloat64);
  nn::StateDict state;
  for (const auto& [name, t] : net.state_dict()) state[name] = ref["state." + name];
  net.load_state_dict(state);

  Tensor logits = net(ref["x"]);
  expect_close(logits, ref["logits"], 1e-9, 1e-11);
  Tensor loss = F::cross_entropy(logits, ref["target"]);
  expect_close(loss.reshape({1}), ref["loss"], 1e-9, 1e-11);
  loss.backward();
  for (const auto& [name, p] : net.named_parameters()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(p.grad().defined());
    expect_close(p.grad(), ref["grad." + name], 1e-7, 1e-10);
  }
  for (const auto& [name, b] : net.named_buffers()) {
    SCOPED_TRACE(name);
    expect_close(b, ref["after." + name], 1e-9, 1e-11);
  }
  net.eval();
  NoGradGuard no_grad;
  expect_close(net(ref["x"]), ref["eval_logits"], 1e-9, 1e-11);
}

}  // namespace
}  // namespace strata::test
