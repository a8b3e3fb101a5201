// The Jordan network and the truncated-BPTT helpers (nn/recurrent.h): JordanRNN against a
// reference unrolled here step by step (and, for lengths, row by row), a tiny case worked out
// by hand, float64 gradchecks of the input, y0 and every weight, batch-first and unbatched
// shapes, parameters, error messages, CPU/CUDA parity; time_chunks and detach_state.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_test_util.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace F = nn::functional;
using Act = nn::JordanRNN::Activation;

Tensor apply(Act act, const Tensor& x) {
  switch (act) {
    case Act::Identity: return x;
    case Act::Tanh: return F::tanh(x);
    case Act::Sigmoid: return F::sigmoid(x);
    case Act::Relu: return F::relu(x);
  }
  return x;
}

// The cell formula of the header, one step at a time, on x [T, B, I] (or [T, I]) and
// y0 [B, O] (or [O]): returns (y_1..y_T stacked, y_T).
std::pair<Tensor, Tensor> unrolled(const nn::JordanRNN& m, const Tensor& x, const Tensor& y0) {
  Tensor y = y0;
  std::vector<Tensor> outs;
  for (int64_t t = 0; t < x.size(0); ++t) {
    const Tensor h = apply(m.activation, F::linear(x.select(0, t), m.weight_ih, m.bias_ih) +
                                             F::linear(y, m.weight_hy, m.bias_hy));
    y = apply(m.output_activation, F::linear(h, m.weight_ho, m.bias_ho));
    outs.push_back(y);
  }
  return {stack(outs, 0), y};
}

// With lengths: each row on its own, over its first lengths[b] steps, zeros after.
std::pair<Tensor, Tensor> unrolled_rows(const nn::JordanRNN& m, const Tensor& x, const Tensor& y0,
                                        const std::vector<int64_t>& lengths) {
  const int64_t steps = x.size(0);
  std::vector<Tensor> out_rows, last_rows;
  for (int64_t b = 0; b < x.size(1); ++b) {
    const int64_t len = lengths[static_cast<size_t>(b)];
    auto [out, last] = unrolled(m, x.select(1, b).narrow(0, 0, len), y0.select(0, b));
    if (len < steps) out = cat({out, zeros({steps - len, m.output_size}, out.options())}, 0);
    out_rows.push_back(out);
    last_rows.push_back(last);
  }
  return {stack(out_rows, 1), stack(last_rows, 0)};
}

// A float64 module with its parameters drawn from a fixed seed (not Strata's generator).
void randomize(nn::JordanRNN& m, uint32_t seed) {
  m.to(kFloat64);
  NoGradGuard no_grad;
  for (auto& [name, p] : m.named_parameters()) {
    p.copy_(random_f64(p.shape(), -0.8, 0.8, seed++));
  }
}

TEST(NnJordan, MatchesUnrolledReference) {
  const int64_t T = 5, B = 3, I = 4, H = 6, O = 2;
  for (auto [act, out_act] : {std::pair{Act::Tanh, Act::Tanh}, std::pair{Act::Relu, Act::Sigmoid},
                              std::pair{Act::Sigmoid, Act::Identity}}) {
    SCOPED_TRACE(static_cast<int>(act) * 10 + static_cast<int>(out_act));
    nn::JordanRNN m(I, H, O, act, out_act);
    randomize(m, 11);
    const Tensor x = random_f64({T, B, I}, -1, 1, 1), y0 = random_f64({B, O}, -1, 1, 2);
    auto [out, y_n] = m.forward(x, y0);
    auto [ref_out, ref_y] = unrolled(m, x, y0);
    expect_close(out, ref_out);
    expect_close(y_n, ref_y);
    // forward(input) starts from y0 = 0.
    expect_close(m.forward(x), unrolled(m, x, zeros({B, O}, kFloat64)).first);
  }
}

TEST(NnJordan, WorkedByHand) {
  // I = H = O = 1, identity activations: h_t = 2 x_t + 0.1 + 3 y_{t-1} + 0.2,
  // y_t = 0.5 h_t + 0.3. From y0 = 1, x = (1, -1): h1 = 5.3, y1 = 2.95; h2 = 7.15, y2 = 3.875.
  nn::JordanRNN m(1, 1, 1, Act::Identity, Act::Identity);
  m.to(kFloat64);
  NoGradGuard no_grad;
  m.weight_ih.fill_(2.0);
  m.weight_hy.fill_(3.0);
  m.weight_ho.fill_(0.5);
  m.bias_ih.fill_(0.1);
  m.bias_hy.fill_(0.2);
  m.bias_ho.fill_(0.3);
  auto [out, y_n] = m.forward(f64({1.0, -1.0}, {2, 1, 1}), f64({1.0}, {1, 1}));
  expect_values(out, {2, 1, 1}, {2.95, 3.875});
  expect_values(y_n, {1, 1}, {3.875});
}

TEST(NnJordan, LengthsKeepTheLastOutput) {
  const int64_t T = 4, B = 3, I = 2, H = 3, O = 2;
  nn::JordanRNN m(I, H, O);
  randomize(m, 21);
  const Tensor x = random_f64({T, B, I}, -1, 1, 3), y0 = random_f64({B, O}, -1, 1, 4);
  const std::vector<int64_t> lengths = {4, 1, 2};
  auto [out, y_n] = m.forward(x, y0, lengths);
  auto [ref_out, ref_y] = unrolled_rows(m, x, y0, lengths);
  expect_close(out, ref_out);
  expect_close(y_n, ref_y);
  // Row 1 stops after one step: zeros from step 1 on, and y_n is its first output.
  expect_values(out.select(1, 1).narrow(0, 1, 3), {3, O}, std::vector<double>(3 * O, 0.0), 0, 0);
  expect_close(y_n.select(0, 1), out.select(0, 0).select(0, 1));
  // Full lengths give the unmasked result.
  auto [full_out, full_y] = m.forward(x, y0, {T, T, T});
  expect_close(full_out, unrolled(m, x, y0).first);
}

TEST(NnJordan, BatchFirstAndUnbatched) {
  const int64_t T = 3, B = 2, I = 3, H = 4, O = 2;
  nn::JordanRNN time_major(I, H, O), batch_first(I, H, O, Act::Tanh, Act::Tanh, true, true);
  randomize(time_major, 31);
  randomize(batch_first, 31);
  const Tensor x = random_f64({T, B, I}, -1, 1, 5), y0 = random_f64({B, O}, -1, 1, 6);
  auto [ref_out, ref_y] = time_major.forward(x, y0, {3, 2});
  auto [out, y_n] = batch_first.forward(x.transpose(0, 1).contiguous(), y0, {3, 2});
  EXPECT_EQ(out.shape(), (Shape{B, T, O}));
  expect_close(out, ref_out.transpose(0, 1));
  expect_close(y_n, ref_y);

  // Unbatched [T, I] (batch_first does not apply): row 0 of the batched run.
  auto [ref_full, ref_full_y] = time_major.forward(x, y0);
  for (nn::JordanRNN* m : {&time_major, &batch_first}) {
    auto [u_out, u_y] = m->forward(x.select(1, 0), y0.select(0, 0));
    EXPECT_EQ(u_out.shape(), (Shape{T, O}));
    EXPECT_EQ(u_y.shape(), (Shape{O}));
    expect_close(u_out, ref_full.select(1, 0));
    expect_close(u_y, ref_full_y.select(0, 0));
  }
  EXPECT_EQ(time_major.forward(x.select(1, 0)).shape(), (Shape{T, O}));
}

TEST(NnJordan, Gradcheck) {
  const int64_t T = 3, B = 2, I = 2, H = 3, O = 2;
  for (bool with_lengths : {false, true}) {
    SCOPED_TRACE(with_lengths);
    nn::JordanRNN m(I, H, O, Act::Tanh, Act::Sigmoid);
    m.to(kFloat64);
    auto leaf = [](const Shape& s, uint32_t seed) { return random_f64(s, -1, 1, seed, true); };
    const std::vector<Tensor> inputs = {leaf({T, B, I}, 1), leaf({B, O}, 2),  leaf({H, I}, 3),
                                        leaf({H, O}, 4),    leaf({O, H}, 5),  leaf({H}, 6),
                                        leaf({H}, 7),       leaf({O}, 8)};
    const std::vector<int64_t> lengths = with_lengths ? std::vector<int64_t>{1, 3}
                                                      : std::vector<int64_t>{};
    expect_gradcheck(
        [&](const std::vector<Tensor>& v) {
          // The members forward reads: the gradcheck's leaves stand in for the parameters.
          m.weight_ih = v[2];
          m.weight_hy = v[3];
          m.weight_ho = v[4];
          m.bias_ih = v[5];
          m.bias_hy = v[6];
          m.bias_ho = v[7];
          auto [out, y_n] = m.forward(v[0], v[1], lengths);
          return cat({out.flatten(), y_n.flatten()}, 0);
        },
        inputs);
  }
}

TEST(NnJordan, ParametersAndRepr) {
  nn::JordanRNN m(3, 4, 2);
  const auto named = m.named_parameters();
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"weight_ih", {4, 3}}, {"weight_hy", {4, 2}}, {"weight_ho", {2, 4}},
      {"bias_ih", {4}},      {"bias_hy", {4}},      {"bias_ho", {2}}};
  ASSERT_EQ(named.size(), expected.size());
  for (size_t i = 0; i < named.size(); ++i) {
    EXPECT_EQ(named[i].first, expected[i].first);
    EXPECT_EQ(named[i].second.shape(), expected[i].second) << expected[i].first;
    EXPECT_TRUE(named[i].second.requires_grad());
    // Uniform in ±1/sqrt(hidden_size) = ±0.5, and not constant.
    const Tensor p = named[i].second;
    EXPECT_LE(p.abs().max().item<double>(), 0.5) << expected[i].first;
    EXPECT_GT(p.max().item<double>(), p.min().item<double>()) << expected[i].first;
  }
  EXPECT_EQ(m.extra_repr(), "3, 4, 2");
  nn::JordanRNN bare(3, 4, 2, Act::Relu, Act::Identity, /*bias=*/false, /*batch_first=*/true);
  EXPECT_EQ(bare.parameters().size(), 3u);
  EXPECT_FALSE(bare.bias_ih.defined());
  EXPECT_EQ(bare.extra_repr(),
            "3, 4, 2, activation=relu, output_activation=identity, bias=false, batch_first=true");
  EXPECT_NE(bare.str().find("JordanRNN(3, 4, 2"), std::string::npos) << bare.str();
  // Without biases it still runs and matches the formula.
  bare.to(kFloat64);
  const Tensor x = random_f64({2, 3, 3}, -1, 1, 9);  // batch-first [B=2, T=3, I=3]
  auto [out, y_n] = bare.forward(x, Tensor());
  const Tensor ref = unrolled(bare, x.transpose(0, 1), zeros({2, 2}, kFloat64)).first;
  expect_close(out, ref.transpose(0, 1));
}

TEST(NnJordan, ErrorsNameTheLayerAndShapes) {
  nn::JordanRNN m(3, 4, 2);
  expect_error([&] { m.forward(zeros({4, 2, 5})); },
               {"JordanRNN", "input has 5 features but input_size is 3", "[4,2,5]"});
  expect_error([&] { m.forward(zeros({4, 2, 3}), zeros({3, 2})); },
               {"JordanRNN", "y0 must be [2,2]", "[3,2]", "[4,2,3]"});
  expect_error([&] { m.forward(zeros({4, 3}), zeros({2, 2})); },
               {"JordanRNN", "y0 must be [2]", "[2,2]", "[4,3]"});
  expect_error([&] { m.forward(zeros({4, 2, 3}), Tensor(), {4, 6}); },
               {"JordanRNN", "lengths[1] = 6", "[1, 4]", "[4,2,3]"});
  expect_error([&] { m.forward(zeros({4, 2, 3}), Tensor(), {4}); },
               {"JordanRNN", "1 lengths for a batch of 2", "[4,2,3]"});
  expect_error([&] { m.forward(zeros({3})); }, {"JordanRNN", "3-D", "[3]"});
  expect_error([&] { m.forward(zeros({4, 2, 3}, kFloat64)); },
               {"JordanRNN", "[4,2,3] f64", "weight_ih [4,3] f32"});
  expect_error([] { nn::JordanRNN(3, 0, 2); }, {"JordanRNN", "hidden_size=0"});
}

TEST(NnJordan, CudaMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  nn::JordanRNN m(3, 5, 2);
  const Tensor x = random_f32({4, 2, 3}, -1, 1, 7), y0 = random_f32({2, 2}, -1, 1, 8);
  auto [cpu_out, cpu_y] = m.forward(x, y0, {4, 2});
  m.to(Device(kCUDA, 0));
  auto [out, y_n] = m.forward(x.cuda(), y0.cuda(), {4, 2});
  EXPECT_TRUE(out.device().is_cuda());
  // f32 on both sides, products of length <= 5 through 4 tanh steps.
  expect_close(out.cpu(), cpu_out, 1e-5, 1e-5);
  expect_close(y_n.cpu(), cpu_y, 1e-5, 1e-5);
}

// ---- truncated BPTT ---------------------------------------------------------------------------

TEST(NnTimeChunks, SizesAndViews) {
  Tensor x = random_f64({7, 2, 3}, -1, 1, 1, /*requires_grad=*/true);
  const std::vector<Tensor> chunks = nn::time_chunks(x, 3);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(chunks[1].shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(chunks[2].shape(), (Shape{1, 2, 3}));  // the last chunk is shorter
  for (size_t i = 0; i < chunks.size(); ++i) {
    // Views into x's storage at the chunk's first step.
    EXPECT_EQ(chunks[i].storage().get(), x.storage().get());
    EXPECT_EQ(chunks[i].offset(), static_cast<int64_t>(i) * 3 * 6);
    expect_close(chunks[i], x.narrow(0, static_cast<int64_t>(i) * 3, chunks[i].size(0)), 0, 0);
  }
  // Gradients reach the sequence: d/dx of sum_i (i+1) * sum(chunk_i).
  Tensor loss = chunks[0].sum() + 2.0 * chunks[1].sum() + 3.0 * chunks[2].sum();
  loss.backward();
  std::vector<double> expected;
  for (int64_t t = 0; t < 7; ++t) {
    expected.insert(expected.end(), 6, static_cast<double>(t / 3 + 1));  // chunk index + 1
  }
  expect_values(x.grad(), {7, 2, 3}, expected, 0, 0);

  EXPECT_EQ(nn::time_chunks(x, 7).size(), 1u);
  EXPECT_EQ(nn::time_chunks(x, 100)[0].shape(), (Shape{7, 2, 3}));
  EXPECT_EQ(nn::time_chunks(x, 1).size(), 7u);
}

TEST(NnTimeChunks, BatchFirst) {
  const Tensor x = random_f64({2, 5, 3}, -1, 1, 2);
  const std::vector<Tensor> chunks = nn::time_chunks(x, 2, /*batch_first=*/true);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(chunks[2].shape(), (Shape{2, 1, 3}));
  expect_close(chunks[1], x.narrow(1, 2, 2), 0, 0);
  // Token ids [B, T] chunk the same way.
  EXPECT_EQ(nn::time_chunks(zeros({4, 9}, kInt64), 4, true).back().shape(), (Shape{4, 1}));
}

TEST(NnTimeChunks, Errors) {
  const Tensor x = zeros({6, 2, 3});
  expect_error([&] { nn::time_chunks(x, 0); }, {"time_chunks", "steps must be at least 1, got 0"});
  expect_error([&] { nn::time_chunks(zeros({6}), 2, true); }, {"time_chunks", "[6]"});
}

TEST(NnTimeChunks, DetachedStateStopsTheGradient) {
  // Two chunks of a Jordan network, the state passed on detached: the second chunk's loss
  // reaches only the second chunk's inputs.
  nn::JordanRNN m(2, 3, 2);
  m.to(kFloat64);
  Tensor x = random_f64({6, 2, 2}, -1, 1, 3, /*requires_grad=*/true);
  Tensor y;
  Tensor last_loss;
  for (const Tensor& chunk : nn::time_chunks(x, 3)) {
    auto [out, y_n] = m.forward(chunk, y);
    last_loss = out.sum();
    y = nn::detach_state(y_n);
    EXPECT_FALSE(y.requires_grad());
  }
  last_loss.backward();
  const std::vector<double> g = x.grad().to_vector<double>();
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(g[i], 0.0) << i;  // steps 0..2
  double second = 0.0;
  for (size_t i = 12; i < 24; ++i) second += std::abs(g[i]);
  EXPECT_GT(second, 0.0);
  // detach_state passes undefined states through.
  EXPECT_FALSE(nn::detach_state(Tensor()).defined());
  auto [h, c] = nn::detach_state(std::tuple<Tensor, Tensor>{x * 2.0, Tensor()});
  EXPECT_FALSE(h.requires_grad());
  EXPECT_FALSE(c.defined());
}

}  // namespace
}  // namespace strata::test
