// Higher-order gradients: autograd::grad, backward with create_graph, second derivatives of
// the ops and layers (a float64 gradcheck of each op's gradient), a gradient penalty and
// Hessian-vector products against PyTorch (tests/data/gen_autograd_higher_order.py), tensor
// hooks and retain_grad.
#include <gtest/gtest.h>

#include <map>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using Inputs = std::vector<Tensor>;

const test::Fixture& fixture() {
  static const test::Fixture f("autograd_higher_order.txt");
  return f;
}

// ---- the engine ------------------------------------------------------------------------------

TEST(AutogradGrad, ReturnsGradientsWithoutAccumulating) {
  const Tensor x = test::f64({1.0, 2.0, 3.0}, {3}).set_requires_grad(true);
  const Tensor w = test::f64({0.5, -1.0, 2.0}, {3}).set_requires_grad(true);
  const Tensor y = sum(mul(mul(x, x), w));
  const std::vector<Tensor> grads = autograd::grad({y}, {x});
  test::expect_values(grads[0], {3}, {1.0, -4.0, 12.0});  // 2 x w
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(grads[0].requires_grad());
  // The graph was freed: a second pass through it is an error.
  test::expect_error([&] { (void)autograd::grad({y}, {w}); }, {"a second time", "retain_graph"});
}

TEST(AutogradGrad, SecondAndThirdDerivatives) {
  const Tensor x = test::f64({-1.5, 0.5, 2.0}, {3}).set_requires_grad(true);
  const Tensor y = sum(pow(x, 3.0));
  const Tensor dx = autograd::grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  test::expect_values(dx, {3}, {6.75, 0.75, 12.0});  // 3 x^2
  EXPECT_TRUE(dx.requires_grad());
  const Tensor ddx = autograd::grad({sum(dx)}, {x}, {}, std::nullopt, true)[0];
  test::expect_values(ddx, {3}, {-9.0, 3.0, 12.0});  // 6 x
  const Tensor dddx = autograd::grad({sum(ddx)}, {x})[0];
  test::expect_values(dddx, {3}, {6.0, 6.0, 6.0});
}

TEST(AutogradGrad, BackwardWithCreateGraphKeepsTheGradientsGraph) {
  const Tensor x = test::f64({0.3, -0.7}, {2}).set_requires_grad(true);
  sum(exp(mul(x, 2.0))).backward(Tensor(), std::nullopt, /*create_graph=*/true);
  ASSERT_TRUE(x.grad().requires_grad());  // 2 exp(2x)
  const Tensor first = x.grad().detach().clone();
  const Tensor second = autograd::grad({sum(x.grad())}, {x})[0];  // 4 exp(2x)
  test::expect_close(second, mul(first, 2.0), 1e-15, 0.0);
}

TEST(AutogradGrad, GradOutputsAndSeveralOutputsAndInputs) {
  const Tensor a = test::f64({1.0, 2.0}, {2}).set_requires_grad(true);
  const Tensor b = test::f64({3.0, -1.0}, {2}).set_requires_grad(true);
  const Tensor y1 = mul(a, b), y2 = sum(mul(a, a));
  const std::vector<Tensor> grads =
      autograd::grad({y1, y2}, {a, b}, {test::f64({1.0, 10.0}, {2}), Tensor()});
  test::expect_values(grads[0], {2}, {3.0 + 2.0, -10.0 + 4.0});  // b v + 2 a
  test::expect_values(grads[1], {2}, {1.0, 20.0});               // a v
}

TEST(AutogradGrad, RunsOnlyWhatLeadsToTheInputs) {
  const Tensor x = test::f64({1.0, 2.0}, {2}).set_requires_grad(true);
  const Tensor w = test::f64({3.0, 4.0}, {2}).set_requires_grad(true);
  int w_hook_calls = 0;
  w.register_hook([&](const Tensor&) { ++w_hook_calls; });
  const Tensor y = add(sum(mul(x, x)), sum(exp(w)));
  const Tensor gx = autograd::grad({y}, {x})[0];
  test::expect_values(gx, {2}, {2.0, 4.0});
  EXPECT_EQ(w_hook_calls, 0);  // exp's node never ran
  // A non-leaf input: the gradient reaching it.
  const Tensor h = mul(x, 3.0);
  const Tensor z = sum(mul(h, h));
  test::expect_values(autograd::grad({z}, {h})[0], {2}, {6.0, 12.0});
}

TEST(AutogradGrad, MisuseIsAnError) {
  const Tensor x = test::f64({1.0, 2.0}, {2}).set_requires_grad(true);
  const Tensor unused = test::f64({1.0}, {1}).set_requires_grad(true);
  const Tensor plain = test::f64({1.0}, {1});
  test::expect_error([&] { (void)autograd::grad({sum(x)}, {unused}); },
                     {"autograd::grad", "input 0", "not used", "allow_unused"});
  const std::vector<Tensor> grads =
      autograd::grad({sum(x)}, {x, unused}, {}, std::nullopt, false, /*allow_unused=*/true);
  EXPECT_TRUE(grads[0].defined());
  EXPECT_FALSE(grads[1].defined());
  test::expect_error([&] { (void)autograd::grad({sum(x)}, {plain}); },
                     {"autograd::grad", "does not require grad"});
  test::expect_error(
      [&] {
        (void)autograd::grad({sum(x)}, {x}, {Tensor(), Tensor()});
      },
      {"autograd::grad", "2 grad_outputs for 1 outputs"});
  test::expect_error([&] { (void)autograd::grad({x}, {x}); }, {"backward", "one-element", "[2]"});
  test::expect_error([&] { (void)autograd::grad({}, {x}); }, {"autograd::grad", "output"});
}

TEST(AutogradGrad, OnceDifferentiableOpsRefuseASecondDerivative) {
  const Tensor x = test::random_f64({1, 1, 4, 4}, -1.0, 1.0, 7).set_requires_grad(true);
  const Tensor y = sum(mul(F::max_pool2d(x, {2, 2}), F::max_pool2d(x, {2, 2})));
  const Tensor gx = autograd::grad({y}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  test::expect_error([&] { (void)autograd::grad({sum(gx)}, {x}); },
                     {"double backward", "max_pool2d", "not supported"});
}

// ---- hooks -------------------------------------------------------------------------------------

TEST(AutogradHooks, LeafHooksSeeAndReplaceTheGradient) {
  Tensor x = test::f64({1.0, 2.0}, {2}).set_requires_grad(true);
  std::vector<double> seen;
  x.register_hook([&](const Tensor& g) { seen = g.to_vector<double>(); });
  const int64_t doubling = x.register_hook([](const Tensor& g) { return mul(g, 2.0); });
  sum(mul(x, 3.0)).backward();
  EXPECT_EQ(seen, (std::vector<double>{3.0, 3.0}));  // hooks run in order
  test::expect_values(x.grad(), {2}, {6.0, 6.0});
  x.remove_hook(doubling);
  x.zero_grad();
  sum(mul(x, 3.0)).backward();
  test::expect_values(x.grad(), {2}, {3.0, 3.0});
  // autograd::grad returns what the hooks made of the gradient.
  x.register_hook([](const Tensor& g) { return add(g, 1.0); });
  test::expect_values(autograd::grad({sum(x)}, {x})[0], {2}, {2.0, 2.0});
}

TEST(AutogradHooks, NonLeafHooksChangeWhatFlowsOn) {
  const Tensor x = test::f64({1.0, -2.0}, {2}).set_requires_grad(true);
  const Tensor h = mul(x, x);
  h.register_hook([](const Tensor& g) { return neg(g); });
  sum(mul(h, 5.0)).backward();
  test::expect_values(x.grad(), {2}, {-10.0, 20.0});  // -5 * 2x
  const Tensor y = exp(x);
  y.register_hook([](const Tensor& g) { return ones({3}, g.options()); });
  test::expect_error([&] { sum(y).backward(); },
                     {"register_hook", "'exp'", "[3]", "keep its shape"});
  test::expect_error([&] { (void)test::f64({1.0}, {1}).register_hook([](const Tensor&) {}); },
                     {"register_hook", "does not require grad"});
}

TEST(AutogradHooks, RetainGradKeepsANonLeafGradient) {
  const Tensor x = test::f64({1.0, 2.0}, {2}).set_requires_grad(true);
  const Tensor h = mul(x, 4.0);
  const Tensor other = mul(x, 5.0);
  h.retain_grad();
  EXPECT_TRUE(h.retains_grad());
  EXPECT_FALSE(other.retains_grad());
  sum(mul(h, h)).backward(Tensor(), true);
  test::expect_values(h.grad(), {2}, {8.0, 16.0});  // 2 h
  sum(mul(h, h)).backward();
  test::expect_values(h.grad(), {2}, {16.0, 32.0});  // accumulates, as a leaf's
  EXPECT_FALSE(other.grad().defined());
}

// ---- second derivatives of the ops: gradcheck of each op's gradient ----------------------------

// x -> d/dx sum(fn(x) * v), flattened and concatenated over the inputs, recorded
// (create_graph), so gradcheck compares its analytic Jacobian (the Hessian contracted with v)
// with central differences of it. Runs with gradients on even under gradcheck's numeric
// passes, on leaves of its own where the inputs do not require grad there.
test::TensorFn first_derivative(test::TensorFn fn, uint32_t seed) {
  return [fn, seed](const Inputs& inputs) {
    EnableGradGuard grad_mode;
    Inputs leaves;
    for (const Tensor& input : inputs) {
      leaves.push_back(input.requires_grad() ? input
                                             : input.detach().clone().set_requires_grad(true));
    }
    const Tensor y = fn(leaves);
    const Tensor v = test::random_f64(y.shape(), -1.0, 1.0, seed);
    const Inputs grads =
        autograd::grad({sum(mul(y, v))}, leaves, {}, std::nullopt, /*create_graph=*/true, true);
    Inputs flat;
    for (size_t i = 0; i < grads.size(); ++i) {
      flat.push_back(grads[i].defined() ? grads[i].reshape({-1})
                                        : zeros({leaves[i].numel()}, leaves[i].options()));
    }
    return cat(flat, 0);
  };
}

void expect_second_derivative(const std::string& name, const test::TensorFn& fn,
                              const Inputs& inputs) {
  SCOPED_TRACE(name);
  Inputs leaves;
  for (const Tensor& input : inputs)
    leaves.push_back(input.detach().clone().set_requires_grad(true));
  test::expect_gradcheck(first_derivative(fn, 5), leaves);
}

Tensor input(const Shape& shape, uint32_t seed, double lo = -1.5, double hi = 1.5) {
  return test::random_f64(shape, lo, hi, seed);
}

TEST(AutogradSecondDerivative, ElementwiseAndReductions) {
  const Tensor a = input({2, 3}, 1), b = input({2, 3}, 2);
  const Tensor positive = input({2, 3}, 3, 0.5, 2.0);
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"mul", [](const Inputs& in) { return mul(in[0], in[1]); }},
      {"div", [](const Inputs& in) { return div(in[0], add(mul(in[1], in[1]), 1.0)); }},
      {"exp", [](const Inputs& in) { return exp(in[0]); }},
      {"log", [](const Inputs& in) { return log(add(mul(in[0], in[0]), 1.0)); }},
      {"sqrt", [](const Inputs& in) { return sqrt(add(mul(in[0], in[0]), 1.0)); }},
      {"reciprocal", [](const Inputs& in) { return reciprocal(add(mul(in[0], in[0]), 1.0)); }},
      {"rdiv", [](const Inputs& in) { return rdiv(add(mul(in[0], in[0]), 1.0), 2.0); }},
      {"pow_scalar", [](const Inputs& in) { return pow(in[0], 3.0); }},
      {"sum_mean", [](const Inputs& in) { return mul(sum(in[0], {1}), mean(in[1], {1})); }},
      {"max", [](const Inputs& in) { return mul(max(in[0], {1}), max(in[1], {1})); }},
      {"where", [](const Inputs& in) { return where(gt(in[0], 0.0), mul(in[0], in[1]), in[1]); }},
      {"matmul", [](const Inputs& in) { return matmul(mul(in[0], in[0]), in[1].t()); }},
  };
  for (const auto& [name, fn] : ops) expect_second_derivative(name, fn, {a, b});
  expect_second_derivative("pow_tensor", [](const Inputs& in) { return pow(in[0], in[1]); },
                           {positive, b});
}

TEST(AutogradSecondDerivative, ActivationsAndSoftmax) {
  // Away from relu's and leaky_relu's kink, where central differences would straddle it.
  const Tensor x = test::f64(test::uniform_avoiding(12, -2.0, 2.0, {0.0}, 0.05, 11), {3, 4});
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"relu", [](const Inputs& in) { return mul(F::relu(in[0]), in[0]); }},
      {"leaky_relu", [](const Inputs& in) { return mul(F::leaky_relu(in[0], 0.2), in[0]); }},
      {"sigmoid", [](const Inputs& in) { return F::sigmoid(in[0]); }},
      {"tanh", [](const Inputs& in) { return F::tanh(in[0]); }},
      {"elu", [](const Inputs& in) { return F::elu(in[0], 0.7); }},
      {"softplus", [](const Inputs& in) { return F::softplus(in[0], 2.0); }},
      {"gelu", [](const Inputs& in) { return F::gelu(in[0]); }},
      {"softmax", [](const Inputs& in) { return F::softmax(in[0], 1); }},
      {"log_softmax", [](const Inputs& in) { return F::log_softmax(in[0], 0); }},
  };
  for (const auto& [name, fn] : ops) expect_second_derivative(name, fn, {x});
}

TEST(AutogradSecondDerivative, LayersAndLosses) {
  const Tensor x = input({3, 4}, 21), w = input({2, 4}, 22), bias = input({2}, 23);
  expect_second_derivative("linear",
                           [](const Inputs& in) { return F::tanh(F::linear(in[0], in[1], in[2])); },
                           {x, w, bias});
  const Tensor image = input({2, 2, 5, 4}, 24), kernel = input({4, 1, 3, 2}, 25);
  expect_second_derivative(
      "conv2d",
      [](const Inputs& in) {
        const Tensor y = F::conv2d(in[0], in[1], in[2], {2, 1}, {1, 1}, {1, 2}, /*groups=*/2);
        return mul(y, y);
      },
      {image, kernel, input({4}, 26)});
  expect_second_derivative(
      "conv1d",
      [](const Inputs& in) { return F::softplus(F::conv1d(in[0], in[1], Tensor(), 1, 1)); },
      {input({2, 3, 6}, 27), input({2, 3, 3}, 28)});
  expect_second_derivative("avg_pool2d",
                           [](const Inputs& in) {
                             return exp(F::avg_pool2d(mul(in[0], in[0]), {2, 2}));
                           },
                           {input({1, 2, 4, 4}, 29)});
  const Tensor target = test::i64({1, 0, 1}, {3});
  expect_second_derivative(
      "cross_entropy",
      [target](const Inputs& in) { return F::cross_entropy(matmul(in[0], in[1].t()), target); },
      {x, w});
  expect_second_derivative("mse_loss",
                           [](const Inputs& in) { return F::mse_loss(exp(in[0]), in[1]); },
                           {x, input({3, 4}, 30)});
  expect_second_derivative("binary_cross_entropy",
                           [](const Inputs& in) {
                             return F::binary_cross_entropy(F::sigmoid(in[0]), F::sigmoid(in[1]));
                           },
                           {x, input({3, 4}, 31)});
  expect_second_derivative("bce_with_logits",
                           [](const Inputs& in) {
                             return F::binary_cross_entropy_with_logits(mul(in[0], in[0]),
                                                                        F::sigmoid(in[1]));
                           },
                           {x, input({3, 4}, 32)});
}

TEST(AutogradSecondDerivative, IndexingAndSorting) {
  const Tensor x = input({3, 4}, 41);
  const Tensor rows = test::i64({2, 0, 2}, {3});
  const Tensor index = test::i64({3, 0, 1, 1, 2, 2}, {3, 2});
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"index_select", [rows](const Inputs& in) { return exp(index_select(in[0], 0, rows)); }},
      {"gather", [index](const Inputs& in) { return exp(gather(mul(in[0], in[0]), 1, index)); }},
      {"sort", [](const Inputs& in) { return exp(sort(mul(in[0], in[0]), 1).values); }},
      {"cumsum", [](const Inputs& in) { return exp(cumsum(in[0], 1)); }},
      {"cat_narrow",
       [](const Inputs& in) {
         return exp(cat({in[0], in[0].narrow(1, 1, 2)}, 1));
       }},
  };
  for (const auto& [name, fn] : ops) expect_second_derivative(name, fn, {x});
  const Tensor weight = input({5, 3}, 42);
  const Tensor tokens = test::i64({4, 1, 4, 0}, {2, 2});
  expect_second_derivative("embedding",
                           [tokens](const Inputs& in) {
                             return exp(F::embedding(tokens, mul(in[0], in[0]), /*padding_idx=*/1));
                           },
                           {weight});
}

// ---- against PyTorch: a gradient penalty and Hessian-vector products ---------------------------

using Params = std::map<std::string, Tensor>;

Params load_params(const std::string& name, const std::vector<std::string>& keys) {
  Params params;
  for (const std::string& key : keys) {
    params[key] = fixture()[name + "_" + key].clone().set_requires_grad(true);
  }
  return params;
}

Tensor mlp(const Params& p, const Tensor& x) {
  return F::linear(F::tanh(F::linear(x, p.at("w1"), p.at("b1"))), p.at("w2"), p.at("b2"));
}

Tensor conv_net(const Params& p, const Tensor& x) {
  Tensor h = F::softplus(F::conv2d(x, p.at("cw"), p.at("cb"), {1, 1}, {1, 1}));
  h = F::avg_pool2d(h, {2, 2});
  return F::linear(F::sigmoid(h).reshape({h.size(0), -1}), p.at("lw"), p.at("lb"));
}

const std::vector<std::string> kMlpKeys = {"w1", "b1", "w2", "b2"};
const std::vector<std::string> kConvKeys = {"cw", "cb", "lw", "lb"};

void expect_gradient_penalty(const std::string& name, const std::vector<std::string>& keys,
                             const std::function<Tensor(const Params&, const Tensor&)>& net) {
  SCOPED_TRACE(name);
  const Params params = load_params(name, keys);
  const Tensor x = fixture()[name + "_x"].clone().set_requires_grad(true);
  const Tensor score = sum(net(params, x).select(1, 0));
  const Tensor gx = autograd::grad({score}, {x}, {}, std::nullopt, /*create_graph=*/true)[0];
  test::expect_close(gx, fixture()[name + "_gx"], 1e-12, 1e-14);
  const Tensor norms = sqrt(sum(mul(gx, gx).reshape({gx.size(0), -1}), {1}));
  const Tensor penalty = mean(pow(sub(norms, 1.0), 2.0));
  test::expect_close(penalty, fixture()[name + "_penalty"], 1e-12, 1e-14);
  penalty.backward();
  for (const std::string& key : keys) {
    SCOPED_TRACE(key);
    const std::string expected = name + "_grad_" + key;
    if (!fixture().has(expected)) {  // PyTorch gives none: the penalty does not reach it
      EXPECT_TRUE(!params.at(key).grad().defined() ||
                  max(abs(params.at(key).grad())).item<double>() == 0.0);
      continue;
    }
    test::expect_close(params.at(key).grad(), fixture()[expected], 1e-10, 1e-13);
  }
}

TEST(AutogradHigherOrder, GradientPenaltyMatchesPyTorch) {
  expect_gradient_penalty("gp_mlp", kMlpKeys, mlp);
  expect_gradient_penalty("gp_conv", kConvKeys, conv_net);
}

void expect_hessian_vector(const std::string& name, const std::vector<std::string>& keys,
                           const std::function<Tensor(const Params&, const Tensor&)>& net) {
  SCOPED_TRACE(name);
  const Params params = load_params(name, keys);
  Inputs leaves;
  for (const std::string& key : keys) leaves.push_back(params.at(key));
  const Tensor target = fixture()[name + "_target"].to(kInt64);
  const Tensor loss = F::cross_entropy(net(params, fixture()[name + "_x"]), target);
  test::expect_close(loss, fixture()[name + "_loss"], 1e-12, 1e-14);
  const Inputs grads = autograd::grad({loss}, leaves, {}, std::nullopt, /*create_graph=*/true);
  Tensor dot = zeros({}, kFloat64);
  for (size_t i = 0; i < keys.size(); ++i) {
    test::expect_close(grads[i], fixture()[name + "_g_" + keys[i]], 1e-11, 1e-13);
    dot = add(dot, sum(mul(grads[i], fixture()[name + "_v_" + keys[i]])));
  }
  const Inputs hv = autograd::grad({dot}, leaves);
  for (size_t i = 0; i < keys.size(); ++i) {
    SCOPED_TRACE(keys[i]);
    test::expect_close(hv[i], fixture()[name + "_hv_" + keys[i]], 1e-10, 1e-12);
  }
}

TEST(AutogradHigherOrder, HessianVectorProductMatchesPyTorch) {
  expect_hessian_vector("hvp_mlp", kMlpKeys, mlp);
  expect_hessian_vector("hvp_conv", kConvKeys, conv_net);
}

}  // namespace
}  // namespace strata
