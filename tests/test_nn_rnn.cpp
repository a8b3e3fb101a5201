// The full-sequence recurrent layers RNN (tanh, relu), LSTM and GRU, and the op under them,
// functional::recurrent:
// - against PyTorch (tests/data/gen_nn_rnn.py): one layer, two bidirectional layers,
//   batch-first, unsorted variable lengths, no bias, unbatched; output, final states and the
//   gradients of the input, the states and every parameter, loaded by PyTorch's names through
//   load_state_dict, in float64 and float32;
// - float64 gradchecks of functional::recurrent for every mode (lengths, both directions, two
//   layers, and the dropout path with a fixed seed), dropout between layers, the errors;
// - the learning test: an LSTM carries a symbol across 50 noisy steps, an Elman RNN does not.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <iterator>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace F = nn::functional;

const Fixture& fixture() {
  static const Fixture f("nn_rnn.txt");
  return f;
}

// The sizes every fixture case uses (gen_nn_rnn.py: I, H, T, B).
constexpr int64_t kInput = 3, kHidden = 4;

// One case of gen_nn_rnn.py.
struct RnnCase {
  const char* name;
  RnnMode mode;
  int64_t num_layers;
  bool bidirectional;
  bool batch_first;
  bool bias;
  bool lengths;  // the fixture holds <name>_lengths
};

const RnnCase kCases[] = {
    {"rnn_tanh_uni", RnnMode::Tanh, 1, false, false, true, false},
    {"rnn_tanh_bi2", RnnMode::Tanh, 2, true, false, true, false},
    {"rnn_tanh_bf2", RnnMode::Tanh, 2, false, true, true, false},
    {"rnn_relu_uni", RnnMode::Relu, 1, false, false, true, false},
    {"rnn_relu_bi2", RnnMode::Relu, 2, true, false, true, false},
    {"rnn_relu_bf2", RnnMode::Relu, 2, false, true, true, false},
    {"lstm_uni", RnnMode::Lstm, 1, false, false, true, false},
    {"lstm_bi2", RnnMode::Lstm, 2, true, false, true, false},
    {"lstm_bf2", RnnMode::Lstm, 2, false, true, true, false},
    {"gru_uni", RnnMode::Gru, 1, false, false, true, false},
    {"gru_bi2", RnnMode::Gru, 2, true, false, true, false},
    {"gru_bf2", RnnMode::Gru, 2, false, true, true, false},
    {"lstm_len", RnnMode::Lstm, 2, true, false, true, true},
    {"gru_len", RnnMode::Gru, 2, true, false, true, true},
    {"rnn_tanh_len", RnnMode::Tanh, 2, true, false, true, true},
    {"lstm_len_bf", RnnMode::Lstm, 1, false, true, true, true},
    {"lstm_nobias", RnnMode::Lstm, 2, false, false, false, false},
    {"lstm_unbatched", RnnMode::Lstm, 1, true, false, true, false},  // input [T, I]
    {"gru_unbatched", RnnMode::Gru, 1, false, false, true, false},
};

std::unique_ptr<nn::RNNBase> make_module(const nn::RNNOptions& options, RnnMode mode) {
  switch (mode) {
    case RnnMode::Lstm: return std::make_unique<nn::LSTM>(options);
    case RnnMode::Gru: return std::make_unique<nn::GRU>(options);
    case RnnMode::Tanh:
    case RnnMode::Relu: break;
  }
  nn::RNNOptions elman = options;
  elman.nonlinearity =
      mode == RnnMode::Relu ? nn::RNNCell::Nonlinearity::Relu : nn::RNNCell::Nonlinearity::Tanh;
  return std::make_unique<nn::RNN>(elman);
}

std::unique_ptr<nn::RNNBase> make_module(const RnnCase& c) {
  return make_module({.input_size = kInput,
                      .hidden_size = kHidden,
                      .num_layers = c.num_layers,
                      .bias = c.bias,
                      .batch_first = c.batch_first,
                      .bidirectional = c.bidirectional},
                     c.mode);
}

struct RunResult {
  Tensor output, h_n, c_n;  // c_n: LSTM only
};

// The module's forward with states and lengths, whichever of the three classes it is.
RunResult run_module(nn::RNNBase& module, const Tensor& x, const Tensor& h0, const Tensor& c0,
                     const std::vector<int64_t>& lengths = {}) {
  if (auto* lstm = dynamic_cast<nn::LSTM*>(&module)) {
    auto [output, state] = lstm->forward(x, {h0, c0}, lengths);
    return {output, std::get<0>(state), std::get<1>(state)};
  }
  if (auto* gru = dynamic_cast<nn::GRU*>(&module)) {
    auto [output, h_n] = gru->forward(x, h0, lengths);
    return {output, h_n, Tensor()};
  }
  auto [output, h_n] = dynamic_cast<nn::RNN&>(module).forward(x, h0, lengths);
  return {output, h_n, Tensor()};
}

// f64: the same formulas as PyTorch in another summation order (GEMMs of length <= 8 over 5
// steps and 2 layers); 1e-10 relative leaves room for that and nothing more.
// f32: the inputs and parameters are multiples of 1/64, exact in f32, so only f32 rounding
// along 5 steps x 2 layers x 2 directions (and back) differs: ~1e-6 typical, 1e-4 bound.
Tolerance tolerance_for(DType dtype) {
  return dtype == kFloat64 ? Tolerance{1e-10, 1e-10} : Tolerance{1e-4, 1e-4};
}

// ---- against PyTorch ----------------------------------------------------------------------

class RnnMatchesPyTorch : public ::testing::TestWithParam<RnnCase> {};

TEST_P(RnnMatchesPyTorch, OutputStatesAndEveryGradient) {
  const RnnCase& c = GetParam();
  const Fixture& f = fixture();
  const std::string p = std::string(c.name) + "_";
  const bool lstm = c.mode == RnnMode::Lstm;
  const std::vector<int64_t> lengths =
      c.lengths ? f[p + "lengths"].to_vector<int64_t>() : std::vector<int64_t>{};

  for (DType dtype : {kFloat64, kFloat32}) {
    SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype));
    const Tolerance tol = tolerance_for(dtype);
    std::unique_ptr<nn::RNNBase> module = make_module(c);
    module->to(dtype);
    // PyTorch's names, unchanged: strict loading fails on any missing or extra key.
    nn::StateDict state;
    for (const auto& [key, t] : module->state_dict()) state[key] = f[p + key];
    module->load_state_dict(state);
    EXPECT_EQ(module->parameters().size(), state.size());

    Tensor x = f[p + "x"].to(dtype).clone().set_requires_grad(true);
    Tensor h0 = f[p + "h0"].to(dtype).clone().set_requires_grad(true);
    Tensor c0 = lstm ? f[p + "c0"].to(dtype).clone().set_requires_grad(true) : Tensor();
    RunResult out = run_module(*module, x, h0, c0, lengths);
    {
      SCOPED_TRACE("output");
      expect_close(out.output, f[p + "output"], tol.rtol, tol.atol);
    }
    {
      SCOPED_TRACE("h_n");
      expect_close(out.h_n, f[p + "h_n"], tol.rtol, tol.atol);
    }
    if (lstm) {
      SCOPED_TRACE("c_n");
      expect_close(out.c_n, f[p + "c_n"], tol.rtol, tol.atol);
    } else {
      EXPECT_FALSE(out.c_n.defined());
    }

    Tensor loss = (out.output * f[p + "g_out"].to(dtype)).sum() +
                  (out.h_n * f[p + "g_h"].to(dtype)).sum();
    if (lstm) loss = loss + (out.c_n * f[p + "g_c"].to(dtype)).sum();
    loss.backward();
    {
      SCOPED_TRACE("grad of x");
      expect_close(x.grad(), f[p + "grad_x"], tol.rtol, tol.atol);
    }
    {
      SCOPED_TRACE("grad of h0");
      expect_close(h0.grad(), f[p + "grad_h0"], tol.rtol, tol.atol);
    }
    if (lstm) {
      SCOPED_TRACE("grad of c0");
      expect_close(c0.grad(), f[p + "grad_c0"], tol.rtol, tol.atol);
    }
    for (const auto& [key, param] : module->named_parameters()) {
      SCOPED_TRACE("grad of " + key);
      ASSERT_TRUE(param.grad().defined());
      EXPECT_EQ(param.grad().dtype(), dtype);
      expect_close(param.grad(), f[p + "grad_" + key], tol.rtol, tol.atol);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RnnMatchesPyTorch, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<RnnCase>& param_info) {
                           return std::string(param_info.param.name);
                         });

// PyTorch's documented order and names (torch.nn.LSTM, "Variables"): per layer the forward
// direction then _reverse, each weight_ih, weight_hh, bias_ih, bias_hh; weight_ih of layer 1
// takes both directions' outputs.
TEST(NnRnn, ParameterNamesAndShapesArePyTorchs) {
  nn::LSTM lstm({.input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true});
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"weight_ih_l0", {16, 3}},         {"weight_hh_l0", {16, 4}},
      {"bias_ih_l0", {16}},              {"bias_hh_l0", {16}},
      {"weight_ih_l0_reverse", {16, 3}}, {"weight_hh_l0_reverse", {16, 4}},
      {"bias_ih_l0_reverse", {16}},      {"bias_hh_l0_reverse", {16}},
      {"weight_ih_l1", {16, 8}},         {"weight_hh_l1", {16, 4}},
      {"bias_ih_l1", {16}},              {"bias_hh_l1", {16}},
      {"weight_ih_l1_reverse", {16, 8}}, {"weight_hh_l1_reverse", {16, 4}},
      {"bias_ih_l1_reverse", {16}},      {"bias_hh_l1_reverse", {16}},
  };
  const auto named = lstm.named_parameters();
  ASSERT_EQ(named.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(named[i].first, expected[i].first) << "parameter " << i;
    EXPECT_EQ(named[i].second.shape(), expected[i].second) << expected[i].first;
    // The same shapes as the PyTorch module that wrote the fixture.
    EXPECT_EQ(named[i].second.shape(), fixture()["lstm_bi2_" + expected[i].first].shape())
        << expected[i].first;
  }
  // flat_weights() lists the same tensors in the same order.
  const std::vector<Tensor> flat = lstm.flat_weights();
  ASSERT_EQ(flat.size(), expected.size());
  for (size_t i = 0; i < flat.size(); ++i) EXPECT_TRUE(flat[i].is_same(named[i].second)) << i;

  // Without bias: only the weights, and flat_weights() holds undefined biases in their place.
  nn::GRU gru({.input_size = 3, .hidden_size = 4, .bias = false});
  const auto gru_named = gru.named_parameters();
  ASSERT_EQ(gru_named.size(), 2u);
  EXPECT_EQ(gru_named[0].first, "weight_ih_l0");
  EXPECT_EQ(gru_named[0].second.shape(), (Shape{12, 3}));
  EXPECT_EQ(gru_named[1].first, "weight_hh_l0");
  const std::vector<Tensor> gru_flat = gru.flat_weights();
  ASSERT_EQ(gru_flat.size(), 4u);
  EXPECT_FALSE(gru_flat[2].defined());
  EXPECT_FALSE(gru_flat[3].defined());
}

TEST(NnRnn, DefaultsAndShapes) {
  // Parameters uniform in +-1/sqrt(hidden) as PyTorch's; unit_forget_bias sets b_ih's forget
  // block to 1 and b_hh's to 0.
  manual_seed(1);
  nn::LSTM uniform({.input_size = 3, .hidden_size = 16, .num_layers = 2});
  for (const auto& [key, param] : uniform.named_parameters()) {
    SCOPED_TRACE(key);
    EXPECT_EQ(param.dtype(), kFloat32);
    EXPECT_TRUE(param.requires_grad());
    EXPECT_LE(param.abs().max().item<double>(), 1.0 / std::sqrt(16.0) + 1e-7);
    EXPECT_GE(param.abs().max().item<double>(), 0.8 / std::sqrt(16.0));  // not all tiny
  }
  nn::LSTM lstm({.input_size = 3, .hidden_size = 16, .unit_forget_bias = true});
  std::vector<double> b_ih = values_of(lstm.state_dict().at("bias_ih_l0"));
  std::vector<double> b_hh = values_of(lstm.state_dict().at("bias_hh_l0"));
  for (size_t i = 16; i < 32; ++i) {
    EXPECT_EQ(b_ih[i], 1.0) << i;
    EXPECT_EQ(b_hh[i], 0.0) << i;
  }
  EXPECT_NE(b_ih[0], 1.0);  // the other gates keep their uniform values

  // Shapes: time-major, batch-first and unbatched; zero states by default.
  nn::GRU gru({.input_size = 3, .hidden_size = 4, .num_layers = 2, .bidirectional = true});
  EXPECT_EQ(gru(random_f32({7, 2, 3}, -1, 1, 1)).shape(), (Shape{7, 2, 8}));
  auto [out, h_n] = gru.forward(random_f32({7, 3}, -1, 1, 2), Tensor());
  EXPECT_EQ(out.shape(), (Shape{7, 8}));
  EXPECT_EQ(h_n.shape(), (Shape{4, 4}));
  nn::RNN rnn({.input_size = 3, .hidden_size = 5, .batch_first = true});
  auto [rnn_out, rnn_h] = rnn.forward(random_f32({2, 6, 3}, -1, 1, 3), Tensor());
  EXPECT_EQ(rnn_out.shape(), (Shape{2, 6, 5}));
  EXPECT_EQ(rnn_h.shape(), (Shape{1, 2, 5}));
  // The last output of a one-way layer is its final hidden state.
  expect_close(rnn_out.select(1, 5), rnn_h.select(0, 0), 0, 0);
  // An undefined h0 is zeros.
  Tensor x = random_f32({2, 6, 3}, -1, 1, 4);
  auto [a, ha] = rnn.forward(x, Tensor());
  auto [b, hb] = rnn.forward(x, zeros({1, 2, 5}));
  expect_close(a, b, 0, 0);
}

// ---- gradients ----------------------------------------------------------------------------

// A tiny stack for gradchecks: T 3, B 2, I 2, H 2, 2 layers, both directions, lengths [2, 3]
// (unsorted, so the reverse direction starts mid-sequence in row 0).
struct TinyStack {
  RnnMode mode;
  F::RecurrentOptions options;
  std::vector<Tensor> weights;  // 4 per layer and direction, all float64

  explicit TinyStack(RnnMode mode_) : mode(mode_) {
    options.mode = mode;
    options.num_layers = 2;
    options.bidirectional = true;
    options.lengths = {2, 3};
    const int64_t gates = rnn_gate_count(mode), h = 2;
    uint32_t seed = 100;
    for (int64_t layer = 0; layer < 2; ++layer) {
      for (int64_t dir = 0; dir < 2; ++dir) {
        const int64_t in = layer == 0 ? 2 : 2 * h;
        weights.push_back(random_f64({gates * h, in}, -0.8, 0.8, seed++));
        weights.push_back(random_f64({gates * h, h}, -0.8, 0.8, seed++));
        weights.push_back(random_f64({gates * h}, -0.5, 0.5, seed++));
        weights.push_back(random_f64({gates * h}, -0.5, 0.5, seed++));
      }
    }
  }
};

// Indices in flat_weights order: 4 * (layer * directions + direction) + {0 w_ih, 1 w_hh,
// 2 b_ih, 3 b_hh}. The checked ones: w_ih_l0, b_hh_l0, b_ih_l1, w_hh_l1_reverse.
constexpr size_t kCheckedWeights[] = {0, 3, 10, 13};

void gradcheck_stack(RnnMode mode, double dropout) {
  TinyStack stack(mode);
  const bool lstm = mode == RnnMode::Lstm;
  stack.options.dropout = dropout;
  std::vector<Tensor> leaves = {random_f64({3, 2, 2}, -1, 1, 1, true),
                                random_f64({4, 2, 2}, -0.8, 0.8, 2, true)};
  if (lstm) leaves.push_back(random_f64({4, 2, 2}, -0.8, 0.8, 3, true));
  const size_t first_weight = leaves.size();
  for (size_t k : kCheckedWeights) leaves.push_back(stack.weights[k].clone().set_requires_grad(true));

  auto fn = [&](const std::vector<Tensor>& v) -> Tensor {
    std::vector<Tensor> weights = stack.weights;
    for (size_t i = 0; i < std::size(kCheckedWeights); ++i) {
      weights[kCheckedWeights[i]] = v[first_weight + i];
    }
    // The same dropout masks on every evaluation: a fixed function of the inputs.
    manual_seed(1234);
    F::RecurrentResult r =
        F::recurrent(v[0], v[1], lstm ? v[2] : Tensor(), weights, stack.options);
    std::vector<Tensor> parts = {r.output.flatten(), r.h_n.flatten()};
    if (lstm) parts.push_back(r.c_n.flatten());
    return cat(parts, 0);
  };
  expect_gradcheck(fn, leaves);
}

TEST(NnRnnGrad, GradcheckEveryModeTwoLayersBidirectionalWithLengths) {
  for (RnnMode mode : {RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru}) {
    SCOPED_TRACE(static_cast<int>(mode));
    gradcheck_stack(mode, 0.0);
  }
}

// With dropout on in training the stack runs layer by layer with dropout between: another
// path, whose gradient is checked too (the seed fixes the mask).
TEST(NnRnnGrad, GradcheckWithDropoutBetweenLayers) {
  for (RnnMode mode : {RnnMode::Lstm, RnnMode::Gru}) {
    SCOPED_TRACE(static_cast<int>(mode));
    gradcheck_stack(mode, 0.4);
  }
}

// Padded steps: outputs there are zero, the input gets no gradient there, and a row's h_n is
// its state after its own last step (the same as running that row alone, cut to its length).
TEST(NnRnnGrad, PaddedStepsAreInertAndRowsAreIndependent) {
  for (RnnMode mode : {RnnMode::Tanh, RnnMode::Lstm, RnnMode::Gru}) {
    SCOPED_TRACE(static_cast<int>(mode));
    const bool lstm = mode == RnnMode::Lstm;
    TinyStack stack(mode);
    Tensor x = random_f64({3, 2, 2}, -1, 1, 5, true);
    Tensor h0 = random_f64({4, 2, 2}, -0.8, 0.8, 6);
    Tensor c0 = lstm ? random_f64({4, 2, 2}, -0.8, 0.8, 7) : Tensor();
    F::RecurrentResult r = F::recurrent(x, h0, c0, stack.weights, stack.options);
    // Row 0 has length 2: step 2 is padding.
    expect_close(r.output.select(0, 2).select(0, 0), zeros({4}, kFloat64), 0, 0);
    r.output.sum().backward();
    expect_close(x.grad().select(0, 2).select(0, 0), zeros({2}, kFloat64), 0, 0);
    EXPECT_GT(x.grad().select(0, 1).select(0, 0).abs().sum().item<double>(), 0.0);

    // Row 0 alone, cut to its 2 steps, with no lengths at all.
    F::RecurrentOptions alone = stack.options;
    alone.lengths = {};
    Tensor x0 = x.detach().narrow(1, 0, 1).narrow(0, 0, 2);
    F::RecurrentResult r0 = F::recurrent(x0, h0.narrow(1, 0, 1), lstm ? c0.narrow(1, 0, 1) : Tensor(),
                                         stack.weights, alone);
    expect_close(r.output.narrow(0, 0, 2).narrow(1, 0, 1), r0.output);
    expect_close(r.h_n.narrow(1, 0, 1), r0.h_n);
    if (lstm) expect_close(r.c_n.narrow(1, 0, 1), r0.c_n);
  }
}

// ---- dropout between layers ---------------------------------------------------------------

TEST(NnRnnDropout, TrainingDiffersEvalMatchesNoDropoutSeedRepeats) {
  manual_seed(5);
  nn::LSTM lstm({.input_size = 3, .hidden_size = 8, .num_layers = 2, .dropout = 0.5});
  nn::LSTM plain({.input_size = 3, .hidden_size = 8, .num_layers = 2});
  plain.load_state_dict(lstm.state_dict());
  const Tensor x = random_f32({6, 4, 3}, -1, 1, 8);

  manual_seed(42);
  auto [train_a, state_a] = lstm.forward(x, {Tensor(), Tensor()});
  manual_seed(42);
  auto [train_b, state_b] = lstm.forward(x, {Tensor(), Tensor()});
  // The same seed drops the same units.
  expect_close(train_a, train_b, 0, 0);
  expect_close(std::get<0>(state_a), std::get<0>(state_b), 0, 0);
  // Another seed drops others.
  manual_seed(43);
  Tensor train_c = lstm(x);
  EXPECT_GT((train_a - train_c).abs().max().item<double>(), 1e-3);

  lstm.eval();
  auto [eval_out, eval_state] = lstm.forward(x, {Tensor(), Tensor()});
  EXPECT_GT((train_a - eval_out).abs().max().item<double>(), 1e-3);
  // Eval mode: no dropout at all, exactly the module built without it.
  auto [plain_out, plain_state] = plain.forward(x, {Tensor(), Tensor()});
  expect_close(eval_out, plain_out);
  expect_close(std::get<0>(eval_state), std::get<0>(plain_state));
  expect_close(std::get<1>(eval_state), std::get<1>(plain_state));
  // Layer 0's final state does not pass through any dropout, even in training.
  expect_close(std::get<0>(state_a).select(0, 0), std::get<0>(plain_state).select(0, 0));
}

// ---- errors -------------------------------------------------------------------------------

TEST(NnRnnErrors, MessagesNameTheLayerAndTheShapes) {
  nn::LSTM lstm({.input_size = 3, .hidden_size = 4, .num_layers = 2});
  const Tensor x = zeros({5, 2, 3});
  const Tensor h0 = zeros({2, 2, 4}), c0 = zeros({2, 2, 4});
  expect_error([&] { lstm.forward(zeros({5, 2, 7}), {h0, c0}); },
               {"LSTM", "7 features", "input_size is 3", "[5,2,7]"});
  expect_error([&] { lstm.forward(x, {zeros({1, 2, 4}), c0}); },
               {"LSTM", "h0", "[2,2,4]", "[1,2,4]"});
  expect_error([&] { lstm.forward(x, {h0, zeros({2, 3, 4})}); },
               {"LSTM", "c0", "[2,2,4]", "[2,3,4]"});
  expect_error([&] { lstm.forward(x, {h0, c0}, {6, 2}); }, {"LSTM", "[6,2]", "[5,2,3]"});
  expect_error([&] { lstm.forward(x, {h0, c0}, {5}); }, {"LSTM", "[5]", "[5,2,3]"});
  expect_error([&] { lstm.forward(x, {h0, c0}, {5, 3, 2}); }, {"LSTM", "[5,3,2]"});
  expect_error([&] { lstm.forward(x, {h0, c0}, {0, 2}); }, {"LSTM", "[0,2]"});
  expect_error([&] { lstm.forward(zeros({5, 2, 3, 1}), {Tensor(), Tensor()}); },
               {"LSTM", "[5,2,3,1]"});
  // Unbatched input: the states are [L*D, H].
  expect_error([&] { lstm.forward(zeros({5, 3}), {zeros({2, 1, 4}), Tensor()}); },
               {"LSTM", "h0", "[2,4]", "[2,1,4]"});

  nn::GRU gru({.input_size = 3, .hidden_size = 4, .batch_first = true});
  expect_error([&] { gru.forward(zeros({2, 5, 4}), Tensor()); }, {"GRU", "[2,5,4]"});
  expect_error([&] { gru.forward(zeros({2, 5, 3}), zeros({1, 5, 4})); },
               {"GRU", "h0", "[1,2,4]", "[1,5,4]"});
  nn::RNN rnn(3, 4);
  expect_error([&] { rnn.forward(zeros({5, 2, 3}), zeros({1, 2, 4}, kFloat64)); },
               {"RNN", "h0"});

  // The functional form: a cell state for a GRU, weights of the wrong shape.
  TinyStack stack(RnnMode::Gru);
  expect_error(
      [&] {
        F::recurrent(zeros({3, 2, 2}, kFloat64), Tensor(), zeros({4, 2, 2}, kFloat64),
                     stack.weights, stack.options);
      },
      {"c0"});
  std::vector<Tensor> bad = stack.weights;
  bad[13] = zeros({6, 3}, kFloat64);  // weight_hh_l1_reverse should be [6, 2]
  expect_error(
      [&] { F::recurrent(zeros({3, 2, 2}, kFloat64), Tensor(), Tensor(), bad, stack.options); },
      {"weight_hh_l1_reverse", "[6,3]"});
}

TEST(NnRnnErrors, LengthsFromMask) {
  // Batch-first [B, T]: ones then zeros in each row.
  const Tensor mask = boolean({true, true, false, false,   //
                               true, true, true, true,     //
                               true, false, false, false},
                              {3, 4});
  EXPECT_EQ(F::lengths_from_mask(mask), (std::vector<int64_t>{2, 4, 1}));
  // 0/1 numbers, time-major [T, B].
  const Tensor numbers = f32({1, 1, 1,  //
                              1, 1, 0,  //
                              0, 1, 0},
                             {3, 3});
  EXPECT_EQ(F::lengths_from_mask(numbers, /*batch_first=*/false),
            (std::vector<int64_t>{2, 3, 1}));
  // The lengths drive the layer: equal to running the mask's lengths by hand.
  nn::GRU gru({.input_size = 2, .hidden_size = 3, .batch_first = true});
  const Tensor x = random_f32({3, 4, 2}, -1, 1, 3);
  auto [out, h_n] = gru.forward(x, Tensor(), F::lengths_from_mask(mask));
  auto [out2, h_n2] = gru.forward(x, Tensor(), {2, 4, 1});
  expect_close(h_n, h_n2, 0, 0);

  expect_error([&] { F::lengths_from_mask(boolean({true, false, true, true, true, false}, {2, 3})); },
               {"lengths_from_mask", "row 0", "[2,3]"});
  expect_error([&] { F::lengths_from_mask(boolean({false, false, true, true}, {2, 2})); },
               {"lengths_from_mask", "row 0"});
  expect_error([&] { F::lengths_from_mask(boolean({true, true, true}, {3})); },
               {"lengths_from_mask", "[3]"});
}

// ---- learning -----------------------------------------------------------------------------

// The task: 50 steps of K + 1 features. Step 0 carries the class as a one-hot over the first
// K features and a start flag in the last one; steps 1..49 are Gaussian noise (std 1) over
// the same K features, flag 0. The label is the class of step 0.
struct FirstSymbolTask {
  static constexpr int64_t kClasses = 2, kSteps = 50, kFeatures = kClasses + 1;
  std::mt19937 engine;
  explicit FirstSymbolTask(uint32_t seed) : engine(seed) {}

  std::pair<Tensor, Tensor> batch(int64_t n) {
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::uniform_int_distribution<int64_t> symbol(0, kClasses - 1);
    std::vector<float> x(static_cast<size_t>(kSteps * n * kFeatures), 0.0f);
    std::vector<int64_t> y(static_cast<size_t>(n));
    auto at = [&](int64_t t, int64_t b, int64_t k) -> float& {
      return x[static_cast<size_t>((t * n + b) * kFeatures + k)];
    };
    for (int64_t b = 0; b < n; ++b) {
      y[static_cast<size_t>(b)] = symbol(engine);
      at(0, b, y[static_cast<size_t>(b)]) = 1.0f;
      at(0, b, kClasses) = 1.0f;
      for (int64_t t = 1; t < kSteps; ++t) {
        for (int64_t k = 0; k < kClasses; ++k) at(t, b, k) = noise(engine);
      }
    }
    return {f32(x, {kSteps, n, kFeatures}), i64(y, {n})};
  }
};

// Adam (Kingma & Ba), written out: the optimizers are not part of this issue.
struct InlineAdam {
  std::vector<Tensor> params, m, v;
  double lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  int64_t steps = 0;

  InlineAdam(std::vector<Tensor> params_, double lr_) : params(std::move(params_)), lr(lr_) {
    for (const Tensor& p : params) {
      m.push_back(zeros_like(p));
      v.push_back(zeros_like(p));
    }
  }
  void step() {
    NoGradGuard no_grad;
    ++steps;
    const double c1 = 1.0 - std::pow(beta1, static_cast<double>(steps));
    const double c2 = 1.0 - std::pow(beta2, static_cast<double>(steps));
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor& g = params[i].grad();
      if (!g.defined()) continue;
      m[i] = m[i] * beta1 + g * (1.0 - beta1);
      v[i] = v[i] * beta2 + g * g * (1.0 - beta2);
      params[i].add_((m[i] / c1) / ((v[i] / c2).sqrt() + eps), -lr);
    }
  }
};

struct LearningResult {
  double accuracy;  // on held-out sequences
  double seconds;
};

// Trains `module` (one layer) with a Linear head on its final hidden state.
LearningResult train_first_symbol(nn::RNNBase& module, int64_t hidden, int64_t steps) {
  constexpr int64_t kBatch = 32, kHeldOut = 256;
  nn::Linear head(hidden, FirstSymbolTask::kClasses);
  std::vector<Tensor> params = module.parameters();
  for (const Tensor& p : head.parameters()) params.push_back(p);
  InlineAdam adam(params, 0.02);
  FirstSymbolTask task(2024);
  const auto [x_test, y_test] = task.batch(kHeldOut);

  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < steps; ++step) {
    const auto [x, y] = task.batch(kBatch);
    const Tensor h_n = run_module(module, x, Tensor(), Tensor()).h_n;
    const Tensor loss = F::cross_entropy(head(h_n.select(0, 0)), y);
    module.zero_grad();
    head.zero_grad();
    loss.backward();
    adam.step();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  NoGradGuard no_grad;
  const Tensor h_n = run_module(module, x_test, Tensor(), Tensor()).h_n;
  const Tensor predicted = head(h_n.select(0, 0)).argmax(1);
  const double accuracy = (predicted == y_test).to(kFloat64).mean().item<double>();
  return {accuracy, seconds};
}

// Why LSTMs exist: remembering one symbol across 49 steps of noise as strong as the symbol.
// The LSTM's gates let it take the symbol in at the flagged step and shut out the noise
// after; an Elman network adds every step's input into its one state, and its gradient
// through 49 tanh steps mostly vanishes. Both get the same hidden size, steps, batches and
// optimizer. The LSTM's gate biases start as the chrono initialization (Tallec & Ollivier,
// 2018) suggests for dependencies this long: forget gate +3 (keeps ~95% a step instead of
// unit_forget_bias's 73%, which leaves 0.73^49 ~ 2e-7 of the symbol), input gate -3 (closed
// unless the input opens it).
// NOTE: the seeds are fixed, and the Elman half of the claim holds for these seeds, not for
// all: over 10 (initialization, data) seed pairs the LSTM reached 100% on every one, while the
// Elman RNN stayed near chance (44-55%) on 7, reached 68% on one and latched the symbol
// (98-100%) on two. Both were still at chance after 400 steps with these seeds.
TEST(RnnLearning, LstmRemembersFirstSymbolAcross50NoisyStepsElmanDoesNot) {
  constexpr int64_t kUnits = 16, kSteps = 1000;
  manual_seed(7);
  nn::LSTM lstm({.input_size = FirstSymbolTask::kFeatures, .hidden_size = kUnits});
  {
    NoGradGuard no_grad;
    lstm.state_dict().at("bias_ih_l0").narrow(0, 0, kUnits).fill_(-3.0);      // input gate
    lstm.state_dict().at("bias_hh_l0").narrow(0, 0, kUnits).fill_(0.0);
    lstm.state_dict().at("bias_ih_l0").narrow(0, kUnits, kUnits).fill_(3.0);  // forget gate
    lstm.state_dict().at("bias_hh_l0").narrow(0, kUnits, kUnits).fill_(0.0);
  }
  const LearningResult lstm_result = train_first_symbol(lstm, kUnits, kSteps);

  manual_seed(7);
  nn::RNN elman({.input_size = FirstSymbolTask::kFeatures, .hidden_size = kUnits});
  const LearningResult elman_result = train_first_symbol(elman, kUnits, kSteps);

  std::printf("first symbol across 50 steps, %lld Adam steps: LSTM %.1f%% (%.2f s), Elman RNN "
              "%.1f%% (%.2f s)\n",
              static_cast<long long>(kSteps), 100 * lstm_result.accuracy, lstm_result.seconds,
              100 * elman_result.accuracy, elman_result.seconds);
  EXPECT_GE(lstm_result.accuracy, 0.90);
  EXPECT_LE(elman_result.accuracy, 0.65);  // chance + 15 points
}

}  // namespace
}  // namespace strata::test
